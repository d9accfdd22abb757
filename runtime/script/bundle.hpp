#pragma once
// Script bundles: a shard's script tree (its Lua files) packed into one byte
// string that a client fetches over the control channel, named by the
// SHA-256 of those bytes, and kept in an on-disk cache keyed by that hash.
// docs/shards.md describes the format. Decoding takes untrusted bytes: it
// never reads out of bounds and rejects unsafe paths.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nshost {

constexpr uint32_t kBundleMagic = 0x4E534255;  // "NSBU"
constexpr uint16_t kBundleFormat = 1;
constexpr size_t kDefaultMaxBundleBytes = 4u << 20;
constexpr size_t kMaxBundleFiles = 512;
constexpr size_t kMaxBundlePathBytes = 255;
constexpr size_t kMaxBundleDepth = 8;  // directory levels below the entry's
constexpr size_t kSha256Bytes = 32;

struct BundleFile {
  std::string path;  // relative, '/'-separated, ends in ".lua"
  std::string text;  // the file's bytes (Lua source text)
};

struct Bundle {
  std::string entry;               // path of the entry script among `files`
  std::vector<BundleFile> files;   // sorted by path, unique
  // The file at `path`, or nullptr.
  const BundleFile* find(std::string_view path) const;
};

// Packs every *.lua file under the entry script's directory (recursively, at
// most kMaxBundleDepth levels, skipping names that start with '.'), the entry
// included. False with `error` when the tree cannot be read, a name is not a
// safe bundle path, or the encoded bundle would exceed `max_bytes`.
bool bundle_directory(const std::string& entry_script, size_t max_bytes, Bundle& out, std::string& error);

// The canonical encoding (files in path order). Hashing it names the tree.
std::string encode_bundle(const Bundle& bundle);
// Decodes and validates an encoded bundle. False with one readable `error`.
bool decode_bundle(std::string_view bytes, Bundle& out, std::string& error);

// True when `path` is a safe relative bundle path: segments of
// [A-Za-z0-9_-] and '.', no empty, "." or ".." segment, ends in ".lua".
bool valid_bundle_path(std::string_view path);

// SHA-256 of `bytes` (32 raw bytes), computed with OpenSSL's libcrypto.
std::string sha256(std::string_view bytes);
// Lowercase hex of raw bytes.
std::string to_hex(std::string_view bytes);

// Encoded bundles on disk, one file per tree named <hex sha256>.nsb. A read
// re-hashes the file, so a damaged entry is a miss, never wrong code.
class BundleCache {
 public:
  // `dir` is created on the first store. An empty dir disables the cache.
  explicit BundleCache(std::string dir) : dir_(std::move(dir)) {}
  // $NSHOST_CACHE_DIR, else $XDG_CACHE_HOME/nshost/bundles, else
  // $HOME/.cache/nshost/bundles, else "" (no cache).
  static std::string default_dir();

  const std::string& dir() const { return dir_; }
  // The encoded bundle whose SHA-256 is `hash` (raw), if cached and intact.
  bool load(std::string_view hash, std::string& bytes) const;
  // Writes atomically (temporary file, then rename). False with `error`.
  bool store(std::string_view hash, std::string_view bytes, std::string& error) const;

 private:
  std::string path_for(std::string_view hash) const;
  std::string dir_;
};

}  // namespace nshost
