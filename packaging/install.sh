#!/usr/bin/env bash
# Installs RemoteAgent from this source tree with `cargo install`, plus shell
# completions and man pages for the current user. Then run
# `remoteagentctl service install` to start the daemon at login.
#
#   packaging/install.sh            # into ~/.cargo/bin
#   packaging/install.sh --root DIR # into DIR/bin (and DIR/share)
set -euo pipefail
cd "$(dirname "$0")/.."

root="${CARGO_INSTALL_ROOT:-$HOME/.cargo}"
share="${XDG_DATA_HOME:-$HOME/.local/share}"
extra=()
if [ "${1:-}" = "--root" ]; then
  root="$2"
  share="$2/share"
  extra=(--root "$2")
fi
for crate in remoteagentd remoteagentctl; do
  cargo install --locked "${extra[@]}" --path "$crate"
done
bin="$root/bin"
mkdir -p "$share/bash-completion/completions" "$share/zsh/site-functions" \
  "$share/fish/vendor_completions.d" "$share/man/man1"
"$bin/remoteagentctl" completions bash >"$share/bash-completion/completions/remoteagentctl"
"$bin/remoteagentctl" completions zsh >"$share/zsh/site-functions/_remoteagentctl"
"$bin/remoteagentctl" completions fish >"$share/fish/vendor_completions.d/remoteagentctl.fish"
"$bin/remoteagentctl" man --out "$share/man/man1"
"$bin/remoteagentd" --write-man "$share/man/man1"
echo "Installed remoteagentd and remoteagentctl into $bin."
echo "Next: remoteagentctl service install && remoteagentctl pair ./myproject"
