# Stand-in for nginx:1.28: Debian 13's nginx on the Debian 13 base, laid out like the official image
# where the compose files rely on it: /etc/nginx/nginx.conf includes /etc/nginx/conf.d/*.conf (the
# official http block, user `nginx`), a default.conf there that a mounted file replaces, logs to the
# container's stdout/stderr, `nginx -g 'daemon off;'` in the foreground, SIGQUIT for a graceful stop.
FROM nin-standin/debian:trixie
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled /etc/nginx/sites-available /var/www/html \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /bin/false nginx \
 && mkdir -p /etc/nginx/conf.d /usr/share/nginx/html \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx.conf /etc/nginx/nginx.conf
COPY nginx-default.conf /etc/nginx/conf.d/default.conf
RUN echo '<h1>nginx stand-in</h1>' >/usr/share/nginx/html/index.html && nginx -t
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
