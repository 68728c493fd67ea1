"""The model at run time: loaded versions, their lifecycle, batching and admission control."""
