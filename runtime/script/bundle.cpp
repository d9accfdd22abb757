#include "runtime/script/bundle.hpp"

#include "runtime/core/byte_codec.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <sstream>
#include <system_error>

namespace nshost {
namespace fs = std::filesystem;
namespace {

using Reader = ByteReader;

// Encoded size of one file record.
size_t record_bytes(const BundleFile& f) { return 2 + f.path.size() + 4 + f.text.size(); }

}  // namespace

const BundleFile* Bundle::find(std::string_view path) const {
  auto it = std::lower_bound(files.begin(), files.end(), path,
                             [](const BundleFile& f, std::string_view p) { return f.path < p; });
  return it != files.end() && it->path == path ? &*it : nullptr;
}

bool valid_bundle_path(std::string_view path) {
  if (path.empty() || path.size() > kMaxBundlePathBytes) return false;
  if (path.size() < 5 || path.substr(path.size() - 4) != ".lua") return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == ".." || segment[0] == '.') return false;
    for (char c : segment)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
    start = end + 1;
  }
  return true;
}

bool bundle_directory(const std::string& entry_script, size_t max_bytes, Bundle& out, std::string& error) {
  std::error_code ec;
  fs::path entry(entry_script);
  fs::path root = entry.has_parent_path() ? entry.parent_path() : fs::path(".");
  out = Bundle{};
  out.entry = entry.filename().string();
  size_t total = 4 + 2 + 2 + 2 + out.entry.size();
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  if (ec) {
    error = "cannot read " + root.string() + ": " + ec.message();
    return false;
  }
  for (; it != end; it.increment(ec)) {
    if (ec) {
      error = "cannot read " + root.string() + ": " + ec.message();
      return false;
    }
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) {
      if (static_cast<size_t>(it.depth()) + 1 >= kMaxBundleDepth) it.disable_recursion_pending();
      continue;
    }
    if (p.extension() != ".lua" || !it->is_regular_file(ec)) continue;
    std::string relative = p.lexically_relative(root).generic_string();
    if (!valid_bundle_path(relative)) {
      error = "'" + relative + "' is not a bundle path (letters, digits, '_', '-', '.'; ends in .lua)";
      return false;
    }
    if (out.files.size() == kMaxBundleFiles) {
      error = "more than " + std::to_string(kMaxBundleFiles) + " Lua files under " + root.string();
      return false;
    }
    auto size = it->file_size(ec);
    if (ec || size > max_bytes || total + size > max_bytes) {
      error = ec ? "cannot read " + relative + ": " + ec.message()
                 : "script tree " + root.string() + " is over the bundle limit of " + std::to_string(max_bytes) +
                       " bytes";
      return false;
    }
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) {
      error = "cannot read " + p.string();
      return false;
    }
    BundleFile file{relative, text.str()};
    total += record_bytes(file);
    if (total > max_bytes) {
      error = "script tree " + root.string() + " is over the bundle limit of " + std::to_string(max_bytes) + " bytes";
      return false;
    }
    out.files.push_back(std::move(file));
  }
  std::sort(out.files.begin(), out.files.end(), [](const BundleFile& a, const BundleFile& b) { return a.path < b.path; });
  if (!out.find(out.entry)) {
    error = "entry script '" + out.entry + "' is not a bundle path";
    return false;
  }
  return true;
}

std::string encode_bundle(const Bundle& bundle) {
  ByteWriter w;
  size_t size = 10 + bundle.entry.size();
  for (const BundleFile& f : bundle.files) size += record_bytes(f);
  w.reserve(size);
  w.u32(kBundleMagic);
  w.u16(kBundleFormat);
  w.u16(static_cast<uint16_t>(bundle.files.size()));
  w.u16(static_cast<uint16_t>(bundle.entry.size()));
  w.bytes(bundle.entry);
  for (const BundleFile& f : bundle.files) {
    w.u16(static_cast<uint16_t>(f.path.size()));
    w.bytes(f.path);
    w.u32(static_cast<uint32_t>(f.text.size()));
    w.bytes(f.text);
  }
  return w.take();
}

bool decode_bundle(std::string_view bytes, Bundle& out, std::string& error) {
  Reader r(bytes);
  uint32_t magic;
  uint16_t format, count, entry_size;
  std::string_view entry;
  out = Bundle{};
  if (!r.u32(magic) || magic != kBundleMagic) {
    error = "not an nshost bundle (bad magic)";
    return false;
  }
  if (!r.u16(format) || format != kBundleFormat) {
    error = "unsupported bundle format";
    return false;
  }
  if (!r.u16(count) || !r.u16(entry_size) || !r.bytes(entry_size, entry)) {
    error = "truncated bundle header";
    return false;
  }
  if (count > kMaxBundleFiles) {
    error = "bundle claims " + std::to_string(count) + " files (limit " + std::to_string(kMaxBundleFiles) + ")";
    return false;
  }
  out.entry.assign(entry);
  for (uint16_t i = 0; i < count; ++i) {
    uint16_t path_size;
    uint32_t text_size;
    std::string_view path, text;
    if (!r.u16(path_size) || !r.bytes(path_size, path) || !r.u32(text_size) || !r.bytes(text_size, text)) {
      error = "truncated bundle file record " + std::to_string(i);
      return false;
    }
    if (!valid_bundle_path(path)) {
      error = "unsafe bundle path '" + std::string(path.substr(0, 64)) + "'";
      return false;
    }
    if (!out.files.empty() && out.files.back().path >= path) {
      error = "bundle paths are not sorted and unique at '" + std::string(path) + "'";
      return false;
    }
    out.files.push_back(BundleFile{std::string(path), std::string(text)});
  }
  if (!r.done()) {
    error = "trailing bytes after the last bundle file";
    return false;
  }
  if (!out.find(out.entry)) {
    error = "bundle entry '" + out.entry.substr(0, 64) + "' is not one of its files";
    return false;
  }
  return true;
}

std::string sha256(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1 || size != kSha256Bytes)
    throw std::runtime_error("libcrypto: SHA-256 failed");
  return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string to_hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string BundleCache::default_dir() {
  if (const char* env = std::getenv("NSHOST_CACHE_DIR"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/nshost/bundles";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/nshost/bundles";
  return "";
}

std::string BundleCache::path_for(std::string_view hash) const { return dir_ + "/" + to_hex(hash) + ".nsb"; }

bool BundleCache::load(std::string_view hash, std::string& bytes) const {
  if (dir_.empty() || hash.size() != kSha256Bytes) return false;
  std::ifstream in(path_for(hash), std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  std::string data = text.str();
  if (sha256(data) != hash) return false;
  bytes = std::move(data);
  return true;
}

bool BundleCache::store(std::string_view hash, std::string_view bytes, std::string& error) const {
  if (dir_.empty()) return true;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) {
    error = "cannot create " + dir_ + ": " + ec.message();
    return false;
  }
  std::string final_path = path_for(hash);
  std::string temp_path = final_path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.good()) {
      error = "cannot write " + temp_path;
      std::remove(temp_path.c_str());
      return false;
    }
  }
  fs::rename(temp_path, final_path, ec);
  if (ec) {
    error = "cannot rename " + temp_path + ": " + ec.message();
    std::remove(temp_path.c_str());
    return false;
  }
  return true;
}

}  // namespace nshost
