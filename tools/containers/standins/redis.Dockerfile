# Stand-in for redis:7: Debian 13's redis-server (8.0 there) on the Debian 13 base, run like the official
# image: entrypoint docker-entrypoint.sh, CMD redis-server, working directory and volume /data, the server
# as user `redis`, listening on every interface with protected mode off unless a config file says otherwise.
FROM nin-standin/debian:trixie
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
