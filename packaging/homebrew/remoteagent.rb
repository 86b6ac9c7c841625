# Homebrew formula for RemoteAgent, built from source with cargo.
#
# UNTESTED until a release exists: the url below names a tag that is not
# published yet and the sha256 is a placeholder, so `brew install` of the
# stable version cannot work; only `--HEAD` could, and no one has run it.
# Test it (brew install, brew test, brew audit --strict) when v0.1.0 is tagged.
#   brew install --build-from-source ./packaging/homebrew/remoteagent.rb
# Then: `remoteagentctl service install` (a LaunchAgent) and
# `remoteagentctl pair ./myproject`.
class Remoteagent < Formula
  desc "Drive your AI coding agents from Telegram: daemon and CLI"
  homepage "https://github.com/remoteagent/remoteagent"
  url "https://github.com/remoteagent/remoteagent/archive/refs/tags/v0.1.0.tar.gz"
  # Filled in when a release is tagged.
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license any_of: ["MIT", "Apache-2.0"]
  head "https://github.com/remoteagent/remoteagent.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args(path: "remoteagentd")
    system "cargo", "install", *std_cargo_args(path: "remoteagentctl")
    system "cargo", "install", *std_cargo_args(path: "cloud")
    generate_completions_from_executable(bin/"remoteagentctl", "completions")
    system bin/"remoteagentctl", "man", "--out", buildpath/"man"
    system bin/"remoteagentd", "--write-man", buildpath/"man"
    man1.install Dir[buildpath/"man/*.1"]
  end

  def caveats
    <<~EOS
      With your own bot on this machine (needs redis: brew install redis):
        remoteagentctl setup < token.txt
      or, with a hosted cloud, start the daemon at login with:
        remoteagentctl service install
      then pair a project:
        remoteagentctl pair ./myproject
    EOS
  end

  test do
    assert_match "remoteagentd", shell_output("#{bin}/remoteagentd --version")
    # With no daemon running the CLI says so and exits 3.
    output = shell_output("#{bin}/remoteagentctl --socket #{testpath}/none.sock status 2>&1", 3)
    assert_match "not running", output
  end
end
