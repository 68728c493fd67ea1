#!/bin/sh
# Start nginx with a resolver line for the container engine's DNS server, the one that knows
# the compose service names: 127.0.0.11 on Docker, the network's gateway on Podman. Both are
# in /etc/resolv.conf; nginx cannot read that file itself.
set -eu
nameserver=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)
case "$nameserver" in
    *:*) nameserver="[$nameserver]" ;;  # an IPv6 address
esac
echo "resolver $nameserver valid=5s;" > /tmp/resolver.conf
exec nginx -g 'daemon off;'
