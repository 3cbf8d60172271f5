# shellcheck shell=bash
# Sourced by ./nin: `./nin bundle [--backend system|cpu] [--out DIR] [--no-tar]` — a portable,
# self-contained linux-x64 folder (the .NET runtime inside) with the service, the bench, the dashboard,
# the shipped model, a `nin` launcher of its own and the GPU check (tools/bundle/), for a host without
# the .NET SDK. Backend `system` (default): libtorch comes from the host (NIN_LIBTORCH_DIR or the
# PyTorch that python3 imports); `cpu`: libtorch (CPU) inside. Also packed as DIR.tar.xz unless --no-tar.

cmd_bundle() {
    local backend=system out= tar=1
    while [[ $# -gt 0 ]]; do
        case $1 in
            --backend) backend=${2:-}; shift 2 ;;
            --out) out=${2:-}; shift 2 ;;
            --no-tar) tar=0; shift ;;
            *) die "usage: ./nin bundle [--backend system|cpu] [--out DIR] [--no-tar]" ;;
        esac
    done
    case $backend in system | cpu) ;; *) die "--backend must be system or cpu (got '$backend')" ;; esac
    out=$(realpath -m -- "${out:-$REPO/artifacts/nin-bundle-$backend}")
    [[ $out != "$REPO" && $out != / ]] || die "--out must be a folder of its own"
    rm -rf --one-file-system -- "$out" "$out.tar.xz"
    mkdir -p -- "$out/app" "$out/tools"

    build_frontend_on_host
    local project
    for project in Nin.Api/Nin.Api.csproj tools/Nin.Bench/Nin.Bench.csproj; do
        say "publishing $project (self-contained, linux-x64, TorchBackend=$backend)"
        # Own intermediate and output folders, so the repository's normal build stays as it is.
        RUN_CWD=$REPO run_child dotnet publish "$REPO/$project" -c Release -r linux-x64 --self-contained true \
            -p:TorchBackend="$backend" -p:NinBuildFrontend=$( ((USE_ROOT)) && echo false || echo true) \
            --artifacts-path "$REPO/artifacts/bundle-build/$backend" \
            -p:DebugType=none -p:GenerateDocumentationFile=false \
            -o "$out/app" -v quiet --nologo >&2 || die "dotnet publish $project failed"
    done
    # Microsoft.ML.OnnxRuntime's build targets copy its Windows natives even into a linux-x64 publish (17 MB).
    rm -f -- "$out"/app/onnxruntime*.dll "$out"/app/*.dylib
    install -m 755 "$REPO/tools/bundle/nin" "$REPO/tools/bundle/gpu-check.sh" "$out/"
    install -m 644 "$REPO/tools/gpu/d2l_nin_pytorch.py" "$out/tools/"
    echo "$backend" >"$out/BACKEND"
    echo "nin $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown), built $(date -u +%Y-%m-%dT%H:%MZ)" >"$out/VERSION"
    [[ -f $out/app/Nin.Api && -f $out/app/Nin.Bench && -f $out/app/libcoreclr.so ]] || die "the bundle is incomplete (no apphost or runtime in $out/app)"
    say "bundle: $out ($(du -sh -- "$out" | cut -f1))"
    if ((tar)); then
        say "packing $out.tar.xz"
        tar -C "$(dirname -- "$out")" -cf - "$(basename -- "$out")" | xz -T0 -6 >"$out.tar.xz"
        echo "bundle: $out.tar.xz $(stat -c %s "$out.tar.xz" | awk '{ printf "%.1f MB", $1 / 1e6 }') (backend $backend)"
    fi
}
