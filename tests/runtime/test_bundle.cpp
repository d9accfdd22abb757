// Script bundles, their hash and cache, and the shard control messages.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "runtime/script/bundle.hpp"
#include "runtime/transport/wire.hpp"

using namespace nshost;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char pattern[] = "/tmp/nshost-bundle-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& relative, const std::string& text) const {
    std::filesystem::path p = std::filesystem::path(path) / relative;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
};

Bundle sample() {
  Bundle b;
  b.entry = "game.lua";
  b.files = {{"game.lua", "return 1\n"}, {"lib/util.lua", "return {}\n"}};
  return b;
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-2 test vector") {
  CHECK(to_hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(to_hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("bundle paths: relative, safe segments, .lua only") {
  CHECK(valid_bundle_path("game.lua"));
  CHECK(valid_bundle_path("lib/util-2.lua"));
  for (const char* bad : {"", "/etc/x.lua", "../x.lua", "a/../x.lua", "a//x.lua", ".hidden.lua", "x.txt", "a b.lua",
                          "a\\b.lua", "x.lua/"})
    CHECK_MESSAGE(!valid_bundle_path(bad), bad);
}

TEST_CASE("a bundle round-trips and decoding rejects every malformed or unsafe input") {
  std::string bytes = encode_bundle(sample());
  Bundle out;
  std::string error;
  REQUIRE(decode_bundle(bytes, out, error));
  CHECK(out.entry == "game.lua");
  REQUIRE(out.find("lib/util.lua"));
  CHECK(out.find("lib/util.lua")->text == "return {}\n");
  CHECK(out.find("nope.lua") == nullptr);
  for (size_t cut = 0; cut < bytes.size(); ++cut) CHECK_FALSE(decode_bundle(bytes.substr(0, cut), out, error));
  CHECK_FALSE(decode_bundle(bytes + "x", out, error));
  CHECK(error == "trailing bytes after the last bundle file");
  Bundle unsafe = sample();
  unsafe.files[1].path = "../evil.lua";
  std::swap(unsafe.files[0], unsafe.files[1]);
  CHECK_FALSE(decode_bundle(encode_bundle(unsafe), out, error));
  CHECK(error.find("unsafe bundle path") == 0);
  Bundle no_entry = sample();
  no_entry.entry = "main.lua";
  CHECK_FALSE(decode_bundle(encode_bundle(no_entry), out, error));
  Bundle unsorted = sample();
  std::swap(unsorted.files[0], unsorted.files[1]);
  CHECK_FALSE(decode_bundle(encode_bundle(unsorted), out, error));
}

TEST_CASE("bundle_directory packs the entry's tree, skips dot files and non-Lua files, and honours the limit") {
  TempDir dir;
  dir.write("game.lua", "return 1\n");
  dir.write("lib/util.lua", "return {}\n");
  dir.write("notes.txt", "not packed");
  dir.write(".git/hooks.lua", "not packed");
  Bundle b;
  std::string error;
  REQUIRE(bundle_directory(dir.path + "/game.lua", kDefaultMaxBundleBytes, b, error));
  REQUIRE(b.files.size() == 2);
  CHECK(b.files[0].path == "game.lua");
  CHECK(b.files[1].path == "lib/util.lua");
  // Same tree, same hash: the name of a tree is its content.
  Bundle again;
  REQUIRE(bundle_directory(dir.path + "/game.lua", kDefaultMaxBundleBytes, again, error));
  CHECK(sha256(encode_bundle(b)) == sha256(encode_bundle(again)));
  dir.write("lib/util.lua", "return { changed = true }\n");
  REQUIRE(bundle_directory(dir.path + "/game.lua", kDefaultMaxBundleBytes, again, error));
  CHECK(sha256(encode_bundle(b)) != sha256(encode_bundle(again)));
  dir.write("big.lua", std::string(2000, '-'));
  CHECK_FALSE(bundle_directory(dir.path + "/game.lua", 1024, b, error));
  CHECK(error.find("over the bundle limit of 1024 bytes") != std::string::npos);
}

TEST_CASE("the bundle cache returns only intact entries") {
  TempDir dir;
  BundleCache cache(dir.path + "/cache");
  std::string bytes = encode_bundle(sample());
  std::string hash = sha256(bytes);
  std::string got, error;
  CHECK_FALSE(cache.load(hash, got));
  REQUIRE(cache.store(hash, bytes, error));
  REQUIRE(cache.load(hash, got));
  CHECK(got == bytes);
  std::ofstream(dir.path + "/cache/" + to_hex(hash) + ".nsb", std::ios::binary) << "damaged";
  CHECK_FALSE(cache.load(hash, got));
  CHECK_FALSE(BundleCache("").load(hash, got));
}

TEST_CASE("wire: welcome carries the script hash and size, redirect and bundle parts round-trip") {
  wire::Welcome welcome;
  welcome.slot = 3;
  welcome.script_hash = sha256("tree");
  welcome.bundle_bytes = 12345;
  wire::Welcome w2;
  std::string error;
  REQUIRE(wire::decode_welcome(wire::encode_welcome(welcome), w2, error));
  CHECK(w2.slot == 3);
  CHECK(w2.script_hash == welcome.script_hash);
  CHECK(w2.bundle_bytes == 12345);
  // A welcome without them (a shard that serves no bundle) still decodes.
  REQUIRE(wire::decode_welcome(wire::encode_welcome(wire::Welcome{}), w2, error));
  CHECK(w2.script_hash.empty());

  wire::Redirect r{"nshost://127.0.0.1:9000", "name=ann"};
  wire::Redirect r2;
  std::string bytes = wire::encode_redirect(r);
  CHECK(wire::peek_type(bytes) == wire::ControlType::redirect);
  REQUIRE(wire::decode_redirect(bytes, r2, error));
  CHECK(r2.url == r.url);
  CHECK(r2.handoff == r.handoff);
  size_t url_only = 1 + 5 + r.url.size();  // a redirect without a handoff is whole
  for (size_t cut = 1; cut < bytes.size(); ++cut)
    if (cut != url_only) CHECK_FALSE(wire::decode_redirect(bytes.substr(0, cut), r2, error));
  wire::Redirect big{"nshost://h:1", std::string(wire::kMaxHandoffBytes + 1, 'x')};
  CHECK_FALSE(wire::decode_redirect(wire::encode_redirect(big), r2, error));
  CHECK(error == "handoff_too_large");

  wire::BundlePart part;
  std::string encoded_part = wire::encode_bundle_part(70000, "abc");  // the part views it
  REQUIRE(wire::decode_bundle_part(encoded_part, part, error));
  CHECK(part.offset == 70000);
  CHECK(part.bytes == "abc");
  CHECK_FALSE(wire::decode_bundle_part(std::string("\x12\x00\x01", 3), part, error));
  CHECK(wire::decode_bundle_request(wire::encode_bundle_request(), error));
}
