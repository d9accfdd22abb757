#!/usr/bin/env bash
# ./dev.sh demo   install what is missing, build, run the relay demo
# ./dev.sh test   install what is missing, build, run the whole test suite
# ./dev.sh build  install what is missing and build
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the build and the tests need.
PACKAGES=(build-essential cmake pkg-config liblua5.4-dev libuv1-dev libenet-dev doctest-dev
  libcurl4-openssl-dev libssl-dev libwslay-dev nlohmann-json3-dev ca-certificates
  python3 python3-websockets openssl)

install_deps() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "dev.sh: installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)"
}

demo() {
  local port i
  out=$(mktemp -d)
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
  ./build/nshost --role=server --port=0 examples/relay/game.lua 2>"$out/server.log" &
  local server=$!
  for _ in $(seq 100); do
    port=$(grep -o 'listening on [0-9.]*:[0-9]*' "$out/server.log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$out/server.log"; echo "dev.sh: the server did not start"; exit 1; }
  echo "== relay server on 127.0.0.1:$port; three headless clients for 5 s"
  for i in 1 2 3; do
    ./build/nshost --role=client --headless --connect="nshost://127.0.0.1:$port" examples/relay/game.lua \
      2>/dev/null | sed -u "s/^/client $i | /" &
    pids+=($!)
  done
  sleep 5
  kill -TERM "$server"
  wait "$server" && echo "== server stopped cleanly (exit 0)"
  wait "${pids[@]}" 2>/dev/null || true
  echo "== server log"
  sed 's/^/server   | /' "$out/server.log"
}

case "${1:-}" in
  demo) install_deps; build; demo ;;
  test)
    # CMake splits a test name at ';' into tests that match nothing and pass.
    if grep -rnE 'TEST_CASE\("[^"]*;' tests/; then echo "dev.sh: a TEST_CASE name contains ';'" >&2; exit 1; fi
    install_deps; build; cd build && ctest --output-on-failure -j"$(nproc)" --timeout 300 ;;
  build) install_deps; build ;;
  *) echo "usage: ./dev.sh demo|test|build" >&2; exit 2 ;;
esac
