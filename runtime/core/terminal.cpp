#include "runtime/core/terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

namespace nshost {
namespace {

constexpr char kEsc = '\x1b';

// A CSI final byte or an SS3 letter, to a key name ("" for none we name).
const char* cursor_key(char final_byte) {
  switch (final_byte) {
    case 'A': return "up";
    case 'B': return "down";
    case 'C': return "right";
    case 'D': return "left";
    case 'H': return "home";
    case 'F': return "end";
    default: return "";
  }
}

// The number of a "CSI n ~" sequence, to a key name.
const char* tilde_key(int n) {
  switch (n) {
    case 1: case 7: return "home";
    case 2: return "insert";
    case 3: return "delete";
    case 4: case 8: return "end";
    case 5: return "pageup";
    case 6: return "pagedown";
    default: return "";
  }
}

// Length of the UTF-8 character whose first byte is `b` (1 for anything
// malformed, so a bad byte is one key and decoding goes on).
size_t utf8_length(unsigned char b) {
  if (b >= 0xF0 && b < 0xF8) return 4;
  if (b >= 0xE0) return b < 0xF0 ? 3 : 1;
  if (b >= 0xC0) return 2;
  return 1;
}

bool g_atexit_registered = false;

}  // namespace

size_t KeyDecoder::decode_one(std::string_view s, std::string& key) {
  key.clear();
  auto b = static_cast<unsigned char>(s[0]);
  if (b == static_cast<unsigned char>(kEsc)) {
    if (s.size() < 2) return 0;
    if (s[1] == '[') {
      // CSI: parameter bytes 0x30-0x3F, intermediates 0x20-0x2F, a final 0x40-0x7E.
      size_t i = 2;
      int number = 0;
      while (i < s.size() && s[i] >= 0x30 && s[i] <= 0x3F) {
        if (s[i] >= '0' && s[i] <= '9' && number < 1000) number = number * 10 + (s[i] - '0');
        ++i;
      }
      while (i < s.size() && s[i] >= 0x20 && s[i] <= 0x2F) ++i;
      if (i >= s.size()) return 0;
      if (s[i] < 0x40 || s[i] > 0x7E) {
        key = "escape";  // not a sequence after all: ESC then '[' and the rest as typed
        return 1;
      }
      key = s[i] == '~' ? tilde_key(number) : cursor_key(s[i]);
      return i + 1;
    }
    if (s[1] == 'O') {
      if (s.size() < 3) return 0;
      key = cursor_key(s[2]);
      return 3;
    }
    key = "escape";
    return 1;
  }
  switch (b) {
    case '\r': case '\n': key = "enter"; return 1;
    case '\t': key = "tab"; return 1;
    case ' ': key = "space"; return 1;
    case 0x7F: case 0x08: key = "backspace"; return 1;
    default: break;
  }
  if (b < 0x20) {
    key = "ctrl-";
    key += static_cast<char>('a' + b - 1);
    if (b == 0) key = "ctrl-space";
    return 1;
  }
  size_t n = utf8_length(b);
  if (n > s.size()) return 0;
  for (size_t i = 1; i < n; ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) n = 1;
  key.assign(s.substr(0, n));
  return n;
}

void KeyDecoder::feed(std::string_view bytes, std::vector<std::string>& out) {
  pending_.append(bytes);
  std::string_view s = pending_;
  std::string key;
  size_t used = 0;
  while (used < s.size()) {
    size_t n = decode_one(s.substr(used), key);
    if (n == 0) break;
    if (!key.empty()) out.push_back(key);
    used += n;
  }
  pending_.erase(0, used);
  // A run of bytes no terminal sends as one key: give it up rather than grow.
  if (pending_.size() > 64) pending_.clear();
}

void KeyDecoder::flush(std::vector<std::string>& out) {
  if (pending_.empty()) return;
  if (pending_[0] == kEsc) out.emplace_back("escape");
  std::string rest = pending_.substr(1);
  pending_.clear();
  if (!rest.empty() && rest[0] != kEsc) feed(rest, out);
}

bool Terminal::stdin_is_tty() { return uv_guess_handle(STDIN_FILENO) == UV_TTY; }

bool Terminal::size(int& cols, int& rows) {
  for (int fd : {STDOUT_FILENO, STDIN_FILENO}) {
    winsize ws{};
    if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      cols = ws.ws_col;
      rows = ws.ws_row;
      return true;
    }
  }
  return false;
}

bool Terminal::open(uv_loop_t* loop, std::string& message, std::string& code) {
  if (tty_) return true;
  if (!stdin_is_tty()) {
    message = "not a terminal";
    code = "ENOTTY";
    return false;
  }
  int rc = tty_.init([&](uv_tty_t* t) { return uv_tty_init(loop, t, STDIN_FILENO, 1); });
  if (rc == 0) rc = uv_tty_set_mode(tty_.get(), UV_TTY_MODE_RAW);
  if (rc == 0) {
    if (!g_atexit_registered) {
      g_atexit_registered = true;
      std::atexit(restore_terminal_mode);
    }
    tty_.get()->data = this;
    rc = uv_read_start(
        reinterpret_cast<uv_stream_t*>(tty_.get()),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* self = static_cast<Terminal*>(h->data);
          *buf = uv_buf_init(self->buffer_, sizeof self->buffer_);
        },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
          if (auto* self = static_cast<Terminal*>(s->data)) self->on_read(nread, buf->base);
        });
  }
  if (rc != 0) {
    close();
    message = uv_strerror(rc);
    code = uv_err_name(rc);
    return false;
  }
  keys_.clear();
  dropped_ = 0;
  flush_next_poll_ = false;
  return true;
}

void Terminal::on_read(ssize_t nread, const char* data) {
  if (nread < 0) {
    // EOF or an error: no more keys, the mode stays raw until close.
    uv_read_stop(reinterpret_cast<uv_stream_t*>(tty_.get()));
    return;
  }
  std::vector<std::string> keys;
  decoder_.feed(std::string_view(data, static_cast<size_t>(nread)), keys);
  push_keys(keys);
}

void Terminal::push_keys(std::vector<std::string>& keys) {
  for (auto& key : keys) {
    if (key == "ctrl-c") {
      kill(getpid(), SIGINT);
      continue;
    }
    if (keys_.size() >= kMaxKeys) {
      ++dropped_;
      continue;
    }
    keys_.push_back(std::move(key));
  }
}

std::vector<std::string> Terminal::take_keys() {
  // A lone ESC (the escape key) looks like the start of a sequence: after a
  // whole poll interval with nothing following it, it was the key.
  if (decoder_.pending()) {
    if (flush_next_poll_) {
      std::vector<std::string> keys;
      decoder_.flush(keys);
      push_keys(keys);
      flush_next_poll_ = false;
    } else {
      flush_next_poll_ = true;
    }
  } else {
    flush_next_poll_ = false;
  }
  std::vector<std::string> out;
  out.swap(keys_);
  return out;
}

void Terminal::close() {
  if (!tty_) return;
  uv_tty_set_mode(tty_.get(), UV_TTY_MODE_NORMAL);
  tty_.close();
  decoder_ = KeyDecoder();
  keys_.clear();
}

void restore_terminal_mode() { uv_tty_reset_mode(); }

}  // namespace nshost
