# shellcheck shell=bash
# Sourced by ./nin: `./nin doctor` — what nin decided and why, and what the tests will use.

cmd_doctor() {
    local f
    echo "host:              $(host_os) ($(uname -m))"
    if [[ -n $HOST_LIBSTDCXX ]]; then
        echo "host libstdc++:    $HOST_LIBSTDCXX (highest $(glibcxx_max "$HOST_LIBSTDCXX"))"
        if has_needed_glibcxx "$HOST_LIBSTDCXX"; then
            echo "  $NEEDED_GLIBCXX:   yes"
        else
            echo "  $NEEDED_GLIBCXX:   no (TorchSharp's native library cannot load on the host)"
        fi
    else
        echo "host libstdc++:    not found"
    fi
    if ((USE_ROOT)); then echo "Debian 13 root:    needed ($WHY)"; else echo "Debian 13 root:    not needed ($WHY)"; fi
    echo "  location:        $ROOTFS${NIN_ROOTFS:+ (NIN_ROOTFS)}"
    if root_ok; then
        f=$(root_libstdcxx)
        echo "  present:         yes (libstdc++ highest $(glibcxx_max "$f"))"
        if [[ -f $ROOTFS/.nin-root ]]; then sed -n 's/^\([a-z]*\)=/  \1: /p' "$ROOTFS/.nin-root"; fi
    elif [[ -e $ROOTFS ]]; then
        echo "  present:         exists but NOT usable (no env or libstdc++ without $NEEDED_GLIBCXX)"
    else
        echo "  present:         no (created on first use: needs root, debootstrap and $MIRROR)"
    fi
    if ((USE_ROOT)) && [[ $EUID -ne 0 ]]; then
        if unshare --user --map-root-user --mount true 2>/dev/null; then
            echo "  rootless:        user namespaces available"
        else
            echo "  rootless:        user namespaces NOT available; run as root"
        fi
    fi
    if (find_dotnet) 2>/dev/null; then
        find_dotnet
        echo "dotnet:            $DOTNET_EXE (sdk $("$DOTNET_EXE" --version 2>/dev/null || echo '?'))"
    else
        echo "dotnet:            NOT FOUND (install the .NET 10 SDK)"
    fi
    [[ -n ${NIN_LIBTORCH_DIR:-} ]] && echo "NIN_LIBTORCH_DIR:  $NIN_LIBTORCH_DIR"
    doctor_test_deps
    echo "repository:        $REPO"
    return 0
}
