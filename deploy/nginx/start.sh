#!/bin/sh
# Start nginx with what it cannot work out itself:
# - a resolver line for the container engine's DNS server, the one that knows the compose
#   service names: 127.0.0.11 on Docker, the network's gateway on Podman. Both are in
#   /etc/resolv.conf; nginx cannot read that file itself;
# - the server blocks: HTTPS when a certificate and key are mounted in /etc/nginx/tls/
#   (docker-compose.tls.yml), the redirect naming the host's HTTPS port (HTTPS_PORT, 443 by
#   default); else plain HTTP.
set -eu
nameserver=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)
case "$nameserver" in
    *:*) nameserver="[$nameserver]" ;;  # an IPv6 address
esac
echo "resolver $nameserver valid=5s;" > /tmp/resolver.conf
if [ -f /etc/nginx/tls/tls.crt ] && [ -f /etc/nginx/tls/tls.key ]; then
    port="${HTTPS_PORT:-443}"
    case "$port" in
        443) suffix="" ;;
        *[!0-9]*) echo "HTTPS_PORT must be a number: $port" >&2; exit 1 ;;
        *) suffix=":$port" ;;
    esac
    echo "set \$https_port \"$suffix\";" > /tmp/https-port.conf
    cp /etc/nginx/site-https.conf /tmp/site.conf
    echo "nginx: HTTPS on 8443 (redirected from 8080)" >&2
else
    cp /etc/nginx/site-http.conf /tmp/site.conf
fi
exec nginx -g 'daemon off;'
