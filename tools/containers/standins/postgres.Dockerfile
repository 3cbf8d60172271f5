# Stand-in for postgres:17: Debian 13's PostgreSQL 17 with an entrypoint that honours
# POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB like the official image's.
FROM nin-standin/debian:trixie
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql-17 \
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/17/main /etc/postgresql/17/main
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/17/bin:$PATH
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
