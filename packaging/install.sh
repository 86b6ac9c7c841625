#!/usr/bin/env bash
# Installs RemoteAgent from this source tree with `cargo install` (the
# daemon, its CLI and the cloud), plus shell completions and man pages for
# the current user. Then run `remoteagentctl setup` (your own bot, with a
# local cloud) or `remoteagentctl service install` (a hosted cloud).
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
for crate in remoteagentd remoteagentctl cloud; do
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
echo "Installed remoteagentd, remoteagentctl and remoteagent-cloud into $bin."
echo "Next, with your own bot (needs redis-server): remoteagentctl setup < token.txt"
echo "  or, with a hosted cloud: set cloud_url, then remoteagentctl service install"
echo "Then: remoteagentctl pair ./myproject"
