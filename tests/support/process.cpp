#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "tests/support/clock.hpp"

extern char** environ;

namespace nshost::test {

ChildProcess::ChildProcess(std::vector<std::string> args, std::vector<std::string> env) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (auto& e : env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  out_.fd = out_pipe[0];
  err_.fd = err_pipe[0];
  if (rc != 0) throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(rc));
}

ChildProcess::~ChildProcess() {
  if (!status_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (out_.fd >= 0) close(out_.fd);
  if (err_.fd >= 0) close(err_.fd);
}

bool ChildProcess::pump(int timeout_ms) {
  pollfd fds[2];
  int n = 0;
  Stream* streams[2];
  for (Stream* s : {&out_, &err_}) {
    if (s->fd < 0) continue;
    fds[n] = {s->fd, POLLIN, 0};
    streams[n++] = s;
  }
  if (n == 0) return false;
  if (poll(fds, static_cast<nfds_t>(n), timeout_ms) <= 0) return true;
  for (int i = 0; i < n; ++i) {
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    char buffer[4096];
    ssize_t got = read(fds[i].fd, buffer, sizeof buffer);
    Stream& s = *streams[i];
    if (got <= 0) {
      if (!s.partial.empty()) s.lines.push_back(std::move(s.partial));
      s.partial.clear();
      close(s.fd);
      s.fd = -1;
      continue;
    }
    s.partial.append(buffer, static_cast<size_t>(got));
    size_t start = 0, nl;
    while ((nl = s.partial.find('\n', start)) != std::string::npos) {
      s.lines.push_back(s.partial.substr(start, nl - start));
      start = nl + 1;
    }
    s.partial.erase(0, start);
  }
  return true;
}

std::optional<std::string> ChildProcess::wait_line(Stream& stream, std::string_view needle, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    for (; stream.cursor < stream.lines.size(); ++stream.cursor) {
      if (stream.lines[stream.cursor].find(needle) != std::string::npos) return stream.lines[stream.cursor++];
    }
    int64_t left = deadline - now_ms();
    if (left <= 0 || stream.fd < 0) return std::nullopt;
    if (!pump(static_cast<int>(left))) return std::nullopt;
  }
}

std::optional<std::string> ChildProcess::wait_stdout(std::string_view needle, int timeout_ms) {
  return wait_line(out_, needle, timeout_ms);
}

std::optional<std::string> ChildProcess::wait_stderr(std::string_view needle, int timeout_ms) {
  return wait_line(err_, needle, timeout_ms);
}

std::optional<int> ChildProcess::wait_exit(int timeout_ms) {
  if (status_) return status_;
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      while (pump(50)) {
      }
      return status_;
    }
    int64_t left = deadline - now_ms();
    if (left <= 0) return std::nullopt;
    // Reading keeps the child from blocking on a full pipe while we wait.
    if (!pump(static_cast<int>(std::min<int64_t>(left, 20)))) usleep(5000);
  }
}

void ChildProcess::send_signal(int signum) {
  if (!status_ && pid_ > 0) kill(pid_, signum);
}

std::string ChildProcess::stdout_text() const {
  std::string all;
  for (auto& l : out_.lines) all += l + "\n";
  return all + out_.partial;
}

std::string ChildProcess::stderr_text() const {
  std::string all;
  for (auto& l : err_.lines) all += l + "\n";
  return all + err_.partial;
}

std::string nshost_binary() { return NSHOST_BINARY; }
std::string source_dir() { return NSHOST_SOURCE_DIR; }
std::string test_script(std::string_view name) { return std::string(NSHOST_TEST_SCRIPTS) + "/" + std::string(name); }
std::string example_script(std::string_view relative) {
  return std::string(NSHOST_SOURCE_DIR) + "/examples/" + std::string(relative);
}

namespace {

Server start_listening(std::vector<std::string> args, const std::string& script,
                       std::vector<std::string> extra_args, std::vector<std::string> env) {
  for (auto& a : extra_args) args.push_back(a);
  args.push_back(script);
  Server server;
  server.process = std::make_unique<ChildProcess>(args, env);
  if (auto line = server.process->wait_stderr("listening on ", 10000)) {
    auto colon = line->find(':', line->find("listening on "));
    server.port = std::atoi(line->c_str() + colon + 1);
  }
  return server;
}

}  // namespace

Server start_server(const std::string& script, std::vector<std::string> extra_args, std::vector<std::string> env) {
  return start_listening({nshost_binary(), "--role=server", "--port=0"}, script, std::move(extra_args), std::move(env));
}

Server start_host(const std::string& script, std::vector<std::string> extra_args, std::vector<std::string> env) {
  return start_listening({nshost_binary(), "--role=host", "--port=0", "--headless"}, script, std::move(extra_args),
                         std::move(env));
}

std::unique_ptr<ChildProcess> start_client(const std::string& script, int port, std::vector<std::string> extra_args,
                                           std::vector<std::string> env) {
  std::vector<std::string> args{nshost_binary(), "--role=client", "--headless",
                                "--connect=nshost://127.0.0.1:" + std::to_string(port)};
  for (auto& a : extra_args) args.push_back(a);
  args.push_back(script);
  return std::make_unique<ChildProcess>(args, env);
}

}  // namespace nshost::test
