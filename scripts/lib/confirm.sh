# Sourced by the setup scripts. confirm TEXT: say what is about to change on this
# machine and why; on a terminal, ask first (KUBEBOOT_SETUP_YES=1 answers yes);
# without one (CI, pipes) go on after saying it.
confirm() {
    printf '%s\n' "$1" >&2
    if [ "${KUBEBOOT_SETUP_YES:-}" = 1 ] || ! [ -t 0 ]; then
        return 0
    fi
    local answer
    read -r -p "proceed? [y/N] " answer
    case "$answer" in
    [yY]*) return 0 ;;
    *)
        echo "nothing was changed (set KUBEBOOT_SETUP_YES=1 to skip this question)" >&2
        exit 1
        ;;
    esac
}
