# syntax=docker/dockerfile:1
#
# Nin API image.
#
#   CPU (default):  docker build -t nin-api:cpu .
#   CUDA (linux):   docker build -t nin-api:cuda --build-arg TORCH_BACKEND=cuda-linux .
#
# TORCH_BACKEND is the MSBuild TorchBackend property (see Directory.Build.props): cpu | cuda-linux | system.
# cuda-linux pulls TorchSharp-cuda-linux, whose libtorch packages carry the CUDA runtime, cuBLAS and cuDNN
# themselves (a multi-GB restore): the runtime image stays the plain aspnet one. The host needs only the
# NVIDIA driver and the NVIDIA Container Toolkit, which mounts libcuda into the container when it is started
# with a GPU (`docker run --gpus all ...`, or docker-compose.gpu.yml).
#
# Everything is framework-dependent and published for linux-x64, so only the Linux natives
# (libtorch, SkiaSharp) are copied, not the Windows/macOS ones.

ARG DOTNET_VERSION=10.0
ARG NODE_VERSION=22

# ---------------------------------------------------------------- front-end (optional)
# The dashboard lives in Nin.Api/frontend when it exists. The glob `fronten[d]` matches nothing when
# the folder is absent; global.json is listed beside it so that COPY always has a source. Without a
# package.json the stage only creates an empty wwwroot, so the image builds either way.
FROM node:${NODE_VERSION}-bookworm-slim AS frontend
WORKDIR /Nin.Api/frontend
COPY global.json Nin.Api/fronten[d]/package*.json ./
RUN if [ -f package.json ]; then npm ci --no-audit --no-fund; fi
COPY global.json Nin.Api/fronten[d] ./
RUN if [ -f package.json ]; then npm run build; fi \
 && mkdir -p /Nin.Api/wwwroot

# ---------------------------------------------------------------- build
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG TORCH_BACKEND=cpu
WORKDIR /src

# Restore layer: only what restore reads, so source edits don't re-download packages.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY Nin.Model/Nin.Model.csproj Nin.Model/
COPY Nin.Api/Nin.Api.csproj Nin.Api/
RUN dotnet restore Nin.Api/Nin.Api.csproj -r linux-x64 -p:TorchBackend=${TORCH_BACKEND}

COPY Nin.Model/ Nin.Model/
COPY Nin.Api/ Nin.Api/
# The front-end was built in its own stage: put its output in wwwroot and tell MSBuild not to run npm.
COPY --from=frontend /Nin.Api/wwwroot/ Nin.Api/wwwroot/
RUN dotnet publish Nin.Api/Nin.Api.csproj -c Release -r linux-x64 --self-contained false --no-restore \
      -p:TorchBackend=${TORCH_BACKEND} -p:SkipFrontendBuild=true -o /app

# ---------------------------------------------------------------- runtime
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
WORKDIR /app

# MALLOC_ARENA_MAX=2: glibc's per-thread arenas kept what libtorch freed after every training run (a long-lived worker
# grew by hundreds of MB a run); two arenas, with the trim the app does after each run, keep it flat at no measured
# cost in speed (./nin bench memory; docs/jobs.md).
ENV NIN_HOME=/var/lib/nin \
    ASPNETCORE_HTTP_PORTS=8080 \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    MALLOC_ARENA_MAX=2

# The volumes must exist and belong to the app user before VOLUME, so that fresh named volumes inherit it.
RUN mkdir -p /var/lib/nin/models /var/lib/nin/data /var/lib/nin/work \
 && chown -R "$APP_UID:$APP_UID" /var/lib/nin
VOLUME ["/var/lib/nin/models", "/var/lib/nin/data", "/var/lib/nin/work"]

COPY --from=build /app ./

USER $APP_UID
EXPOSE 8080
# No HEALTHCHECK here: the aspnet image has no curl/wget. docker-compose.yml probes /health/ready with
# bash's /dev/tcp instead.
ENTRYPOINT ["dotnet", "Nin.Api.dll"]
