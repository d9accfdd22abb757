#pragma once
// The process's terminal, for a client that reads keys and draws text
// (bindings/term.cpp, docs/scripting.md "term"). stdin is opened as a libuv
// TTY in raw mode and read on the loop; the keys wait in a bounded buffer
// until the script polls them. The mode is restored by close(), by the
// destructor, at exit (atexit) and by restore_terminal_mode(), which main
// calls before a forced _exit.
#include <uv.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/uv_handle.hpp"

namespace nshost {

// Turns the bytes a terminal sends into key names: a printable character as
// itself ("w", "W", "1", UTF-8 whole), "up", "down", "left", "right",
// "home", "end", "insert", "delete", "pageup", "pagedown", "enter", "tab",
// "space", "backspace", "escape", "ctrl-a".."ctrl-z" (but tab, enter). Escape
// sequences it does not know are dropped whole. A sequence split across
// reads is completed by the next feed.
class KeyDecoder {
 public:
  // Appends the keys of `bytes` to `out`; an incomplete sequence at the end
  // is kept for the next call.
  void feed(std::string_view bytes, std::vector<std::string>& out);
  // An incomplete sequence still held is given up: a lone ESC is "escape",
  // the rest is dropped. The caller decides when it has waited long enough.
  void flush(std::vector<std::string>& out);
  bool pending() const { return !pending_.empty(); }

 private:
  // Decodes one key at the start of `s`: the bytes used, 0 if `s` is an
  // incomplete sequence. `key` stays empty for a sequence that names nothing.
  static size_t decode_one(std::string_view s, std::string& key);
  std::string pending_;
};

class Terminal {
 public:
  // Keys held between two polls; past it the newest are dropped (counted).
  static constexpr size_t kMaxKeys = 256;

  // Raw mode turns off the terminal's own SIGINT, so a ctrl-c read from the
  // terminal is sent to this process as SIGINT (the usual clean stop) and
  // not handed to the script.
  Terminal() = default;
  ~Terminal() { close(); }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  // Opens stdin on `loop` in raw mode and starts reading. False with `code`
  // ("ENOTTY" when stdin is not a terminal, else libuv's error name) and
  // `message` set. Opening an open terminal does nothing and succeeds.
  bool open(uv_loop_t* loop, std::string& message, std::string& code);
  bool is_open() const { return static_cast<bool>(tty_); }
  // The keys typed since the last call, oldest first.
  std::vector<std::string> take_keys();
  // Keys dropped because the buffer was full, since open.
  size_t dropped_keys() const { return dropped_; }
  // Restores the mode and stops reading; harmless when not open.
  void close();

  // The size of the terminal on stdout (else stdin): false when neither is one.
  static bool size(int& cols, int& rows);
  // True when stdin is a terminal.
  static bool stdin_is_tty();

 private:
  void on_read(ssize_t nread, const char* data);
  void push_keys(std::vector<std::string>& keys);

  UvHandle<uv_tty_t> tty_;
  KeyDecoder decoder_;
  std::vector<std::string> keys_;
  size_t dropped_ = 0;
  bool flush_next_poll_ = false;  // an incomplete sequence has waited one poll
  char buffer_[256];
};

// Puts the terminal back in the mode it had before any Terminal opened it.
// Async-signal-safe (libuv's uv_tty_reset_mode); harmless if none did.
void restore_terminal_mode();

}  // namespace nshost
