# Stand-in for mcr.microsoft.com/dotnet/aspnet:10.0: the host's .NET and ASP.NET Core runtimes
# (copied out of its SDK) on the Debian 13 base, with the official image's user and settings.
FROM nin-standin/debian:trixie
COPY dotnet/ /usr/share/dotnet/
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && groupadd -g 1654 app && useradd -u 1654 -g app -m -s /bin/false app
ENV APP_UID=1654 \
    ASPNETCORE_HTTP_PORTS=8080 \
    DOTNET_RUNNING_IN_CONTAINER=true
