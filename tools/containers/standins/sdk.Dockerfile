# Stand-in for mcr.microsoft.com/dotnet/sdk:10.0: the host's .NET SDK on the Debian 13 base.
FROM nin-standin/debian:trixie
COPY dotnet/ /usr/share/dotnet/
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && groupadd -g 1654 app && useradd -u 1654 -g app -m -s /bin/false app
ENV DOTNET_ROOT=/usr/share/dotnet \
    APP_UID=1654 \
    DOTNET_RUNNING_IN_CONTAINER=true \
    DOTNET_USE_POLLING_FILE_WATCHER=true \
    NUGET_XMLDOC_MODE=skip \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    DOTNET_NOLOGO=1
