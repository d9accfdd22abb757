#pragma once
// Real child processes for integration tests: spawn nshost with piped
// stdout/stderr, wait for a line with a deadline, signal, reap.
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nshost::test {

// AddressSanitizer keeps freed memory in quarantine: RSS says little there,
// and its shadow memory adds to every figure.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitizedBuild = true;
#else
inline constexpr bool kSanitizedBuild = false;
#endif


class ChildProcess {
 public:
  // args[0] is the program path. `env` entries ("K=V") are added to ours.
  explicit ChildProcess(std::vector<std::string> args, std::vector<std::string> env = {});
  ~ChildProcess();  // SIGKILLs the child if it is still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The next line (after the last one matched on that stream) containing
  // `needle`, or nullopt when the deadline passes or the stream ends first.
  std::optional<std::string> wait_stdout(std::string_view needle, int timeout_ms = 10000);
  std::optional<std::string> wait_stderr(std::string_view needle, int timeout_ms = 10000);
  // Exit status (or 128+signal), or nullopt at the deadline.
  std::optional<int> wait_exit(int timeout_ms = 10000);
  void send_signal(int signum);
  pid_t pid() const { return pid_; }
  // Everything read so far.
  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  struct Stream {
    int fd = -1;
    std::string partial;
    std::vector<std::string> lines;
    size_t cursor = 0;
  };
  std::optional<std::string> wait_line(Stream& stream, std::string_view needle, int timeout_ms);
  // Reads what is available within `timeout_ms`; false when both streams ended.
  bool pump(int timeout_ms);

  pid_t pid_ = -1;
  std::optional<int> status_;
  Stream out_, err_;
};

// Path of the built nshost binary and of the test scripts folder.
std::string nshost_binary();
// The source tree's root (absolute).
std::string source_dir();
std::string test_script(std::string_view name);
std::string example_script(std::string_view relative);

// Starts `nshost --role=server --port=0 ...` and reads the bound port from its
// "listening on" line. `port` is 0 if it never came up.
struct Server {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};
Server start_server(const std::string& script, std::vector<std::string> extra_args = {},
                    std::vector<std::string> env = {});
// The same for a listen server: `nshost --role=host --port=0 --headless ...`.
Server start_host(const std::string& script, std::vector<std::string> extra_args = {},
                  std::vector<std::string> env = {});
std::unique_ptr<ChildProcess> start_client(const std::string& script, int port,
                                           std::vector<std::string> extra_args = {},
                                           std::vector<std::string> env = {});

}  // namespace nshost::test
