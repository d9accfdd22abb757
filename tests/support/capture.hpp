#pragma once
// Captures what this process writes to stderr while it lives (for log tests).
#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace nshost::test {

class StderrCapture {
 public:
  StderrCapture() {
    if (pipe2(pipe_, O_NONBLOCK) != 0) return;
    saved_ = dup(STDERR_FILENO);
    dup2(pipe_[1], STDERR_FILENO);
  }
  ~StderrCapture() { restore(); }
  // Stops capturing and returns what was written.
  std::string text() {
    restore();
    return text_;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
    close(pipe_[1]);
    char buffer[4096];
    ssize_t n;
    while ((n = read(pipe_[0], buffer, sizeof buffer)) > 0) text_.append(buffer, static_cast<size_t>(n));
    close(pipe_[0]);
  }
  int pipe_[2] = {-1, -1};
  int saved_ = -1;
  std::string text_;
};

}  // namespace nshost::test
