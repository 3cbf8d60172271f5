#!/bin/bash
# Stand-in for the official redis image's entrypoint: options alone mean redis-server; the server runs as
# `redis` (runuser for the official gosu) and, without a config file that sets protected-mode, gets
# `--protected-mode no`. With no config file redis-server binds every interface, as in the official image.
set -e
if [[ ${1#-} != "$1" || ${1%.conf} != "$1" ]]; then
    set -- redis-server "$@"
fi
if [[ $1 == redis-server && $(id -u) == 0 ]]; then
    find . \! -user redis -exec chown redis '{}' +
    exec runuser -u redis -- "$0" "$@"
fi
if [[ $1 == redis-server ]]; then
    protected=1
    if [[ -f ${2:-} ]] && grep -q '^protected-mode' "$2"; then protected=; fi
    if [[ -n $protected ]]; then set -- "$@" --protected-mode no; fi
fi
umask 0077
exec "$@"
