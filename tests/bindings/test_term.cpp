// term.*: the key decoder on the bytes terminals send, and the builtin in
// real processes whose stdin is /dev/null and stdout a pipe (not a terminal):
// the failure shape, misuse raising, and which states have it. The TTY path
// itself (raw mode, keys, the mode restored) runs under tmux in
// tests/integration/test_arena.cpp.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "runtime/core/terminal.hpp"
#include "tests/support/process.hpp"

using namespace nshost;
using namespace nshost::test;

namespace {

std::vector<std::string> decode(std::initializer_list<std::string> chunks) {
  KeyDecoder decoder;
  std::vector<std::string> keys;
  for (const auto& chunk : chunks) decoder.feed(chunk, keys);
  return keys;
}

using Keys = std::vector<std::string>;

// Runs tests/scripts/term_probe.lua in `role` with `args`; its stdout.
std::string probe(const std::string& role, std::vector<std::string> args) {
  std::vector<std::string> argv = {nshost_binary(), "--role=" + role, "--port=0", "--connect=nshost://127.0.0.1:9"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(test_script("term_probe.lua"));
  ChildProcess p(argv);
  auto code = p.wait_exit(10000);
  REQUIRE_MESSAGE(code == 0, p.stderr_text());
  return p.stdout_text();
}

}  // namespace

TEST_CASE("term: the key decoder names letters, arrows and control keys") {
  CHECK(decode({"wasdQ"}) == Keys{"w", "a", "s", "d", "Q"});
  CHECK(decode({"\x1b[A\x1b[B\x1b[C\x1b[D"}) == Keys{"up", "down", "right", "left"});
  CHECK(decode({"\x1bOA\x1bOD"}) == Keys{"up", "left"});  // application cursor mode
  CHECK(decode({"\x1b[3~\x1b[5~\x1b[6~\x1b[H\x1b[F"}) == Keys{"delete", "pageup", "pagedown", "home", "end"});
  CHECK(decode({"\r\t \x7f\x01"}) == Keys{"enter", "tab", "space", "backspace", "ctrl-a"});
  CHECK(decode({"\xc3\xa9x"}) == Keys{"\xc3\xa9", "x"});  // UTF-8 whole
  // A modified arrow (shift+up: ESC [ 1 ; 2 A) is still "up"; an unknown
  // sequence (F5: ESC [ 1 5 ~) is dropped whole, not typed as letters.
  CHECK(decode({"\x1b[1;2A", "\x1b[15~", "x"}) == Keys{"up", "x"});
}

TEST_CASE("term: a sequence split across reads is completed and a lone ESC is the escape key once flushed") {
  CHECK(decode({"\x1b", "[", "A"}) == Keys{"up"});
  CHECK(decode({"w\x1b[", "Bs"}) == Keys{"w", "down", "s"});
  CHECK(decode({"\xc3", "\xa9"}) == Keys{"\xc3\xa9"});

  KeyDecoder decoder;
  Keys keys;
  decoder.feed("\x1b", keys);
  CHECK(keys.empty());
  CHECK(decoder.pending());
  decoder.flush(keys);
  CHECK(keys == Keys{"escape"});
  CHECK_FALSE(decoder.pending());
  // ESC followed by a letter is escape, then the letter.
  CHECK(decode({"\x1bq"}) == Keys{"escape", "q"});
}

TEST_CASE("term: bytes no terminal sends are bounded, never buffered without end") {
  // An unterminated sequence past 64 bytes is dropped; what follows decodes.
  KeyDecoder decoder;
  Keys keys;
  decoder.feed(std::string("\x1b[") + std::string(100, '1'), keys);
  CHECK(keys.empty());
  CHECK_FALSE(decoder.pending());
  decoder.feed("a", keys);
  CHECK(keys == Keys{"a"});
  // Every byte value: each is a key or dropped, and decoding reaches the end.
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  all += "z";
  Keys garbage;
  KeyDecoder other;
  other.feed(all, garbage);
  other.flush(garbage);
  REQUIRE_FALSE(garbage.empty());
  CHECK(garbage.back() == "z");
}

TEST_CASE("term: with stdin and stdout not a terminal, open and size fail with ENOTTY and misuse raises") {
  std::string out = probe("client", {});
  CHECK_MESSAGE(out.find("term is table\n") != std::string::npos, out);
  CHECK(out.find("open: nil,not a terminal,ENOTTY\n") != std::string::npos);
  CHECK(out.find("size: nil,not a terminal,ENOTTY\n") != std::string::npos);
  CHECK(out.find("keys before open: false,") != std::string::npos);
  CHECK(out.find("term.keys: the terminal is not open (call term.open first)") != std::string::npos);
  CHECK(out.find("write number: false,") != std::string::npos);
  CHECK(out.find("term.write: text must be a string (got table)") != std::string::npos);
  CHECK(out.find("write huge: false,") != std::string::npos);
  CHECK(out.find("is over the limit of 1048576 bytes") != std::string::npos);
  CHECK(out.find("close: false\n") != std::string::npos);
  // write needs no open terminal: it is stdout.
  CHECK(out.find("written\nwrite: true\n") != std::string::npos);
}

TEST_CASE("term: absent on the server, in bots and in a sandboxed state, and a headless client cannot open it") {
  CHECK(probe("server", {}).find("term is nil\n") != std::string::npos);
  std::string headless = probe("client", {"--headless"});
  CHECK_MESSAGE(headless.find("open: nil,headless client (no terminal input),ENOTTY\n") != std::string::npos, headless);
  CHECK(probe("client", {"--sandbox"}).find("term is nil\n") != std::string::npos);
  CHECK(probe("client", {"--bots=2"}).find("term is nil\n") != std::string::npos);
}
