#include "runtime/cluster/directory.hpp"

#include <nlohmann/json.hpp>

#include "runtime/core/log.hpp"

namespace nshost::cluster {
namespace {

// Every key's lifetime is ARGV[2] ms (3 heartbeats). The time is Redis's own
// (TIME), so the servers' clocks never need to agree.
// KEYS: servers zset, server hash, rooms hash, number key.
// ARGV: id, ttl_ms, url, clients, rooms, load, types, number, then room id/json pairs.
// Returns 1, or -1 when the number key belongs to another server.
const RedisScript kWriteScript{"directory.write", R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local result = 1
if ARGV[8] ~= '0' then
  redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ttl)
  if redis.call('GET', KEYS[4]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[4], ttl)
  else
    result = -1
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'url', ARGV[3], 'clients', ARGV[4], 'rooms', ARGV[5], 'load', ARGV[6],
           'types', ARGV[7], 'number', ARGV[8])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('DEL', KEYS[3])
local i = 9
while i < #ARGV do
  local last = math.min(i + 399, #ARGV)
  local args = {}
  for j = i, last do args[#args + 1] = ARGV[j] end
  redis.call('HSET', KEYS[3], unpack(args))
  i = last + 1
end
if #ARGV > 8 then redis.call('PEXPIRE', KEYS[3], ttl) end
return result
)lua"};

// KEYS: servers zset. ARGV: ttl_ms, key prefix. Returns {id, {hash fields}, {room jsons}} per live server.
const RedisScript kReadScript{"directory.read", R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', ARGV[2] .. 'server:' .. id)
  if #fields > 0 then
    out[#out + 1] = {id, fields, redis.call('HVALS', ARGV[2] .. 'rooms:' .. id)}
  end
end
return out
)lua"};

// The first free number, claimed with SET NX PX. ARGV: id, ttl_ms, prefix, max.
const RedisScript kClaimScript{"directory.claim", R"lua(
for n = 1, tonumber(ARGV[4]) do
  if redis.call('SET', ARGV[3] .. 'server_number:' .. n, ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
    return n
  end
end
return 0
)lua"};

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ',';
    out += p;
  }
  return out;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    if (comma != 0) out.emplace_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

uint32_t to_u32(const std::string& s) {
  try {
    return static_cast<uint32_t>(std::stoul(s));
  } catch (...) {
    return 0;
  }
}

}  // namespace

Directory::Directory(uv_loop_t* loop, RedisClient& redis, Config config, Snapshot snapshot, std::string log_tag)
    : loop_(loop), redis_(redis), config_(std::move(config)), snapshot_(std::move(snapshot)), tag_(std::move(log_tag)) {}

Directory::~Directory() {
  *alive_ = false;
  stop();
}

void Directory::start() {
  if (heartbeat_) return;
  if (heartbeat_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) != 0) return;
  heartbeat_.get()->data = this;
  uv_timer_start(
      heartbeat_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<Directory*>(t->data)->refresh();
      },
      config_.heartbeat_ms, config_.heartbeat_ms);
  if (flush_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0) flush_.get()->data = this;
}

void Directory::stop() {
  heartbeat_.close();
  flush_.close();
}

void Directory::on_redis_up() {
  if (number_ == 0) claim_number();
  else refresh();
}

void Directory::on_redis_down() {
  servers_.clear();
  remote_rooms_.clear();
  writing_ = false;
  claiming_ = false;
}

void Directory::mark_dirty() {
  dirty_ = true;
  if (!flush_ || uv_is_active(reinterpret_cast<uv_handle_t*>(flush_.get()))) return;
  uv_timer_start(
      flush_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Directory*>(t->data);
        if (self && self->dirty_) self->write();
      },
      config_.flush_ms, 0);
}

void Directory::refresh(std::function<void()> done) {
  write();
  read(std::move(done));
}

void Directory::claim_number() {
  if (claiming_ || !redis_.connected()) return;
  claiming_ = true;
  uint32_t ttl = config_.heartbeat_ms * 3;
  std::weak_ptr<bool> alive = alive_;
  redis_.eval(kClaimScript, {},
              {config_.server_id, std::to_string(ttl), kKeyPrefix, std::to_string(kMaxServerNumber)},
              [this, alive](const RedisReply* reply, std::string_view) {
                if (alive.expired()) return;
                claiming_ = false;
                if (!reply || reply->type != RedisReply::Type::integer || reply->integer <= 0) {
                  log_write(LogLevel::error, tag_,
                            "cluster: cannot claim a server number" +
                                std::string(reply && reply->is_error() ? ": " + reply->str : ""));
                  return;
                }
                number_ = static_cast<uint32_t>(reply->integer);
                log_write(LogLevel::info, tag_,
                          "cluster: server " + config_.server_id + " is number " + std::to_string(number_) +
                              " (" + config_.url + ")");
                if (on_number_) on_number_(number_);
                refresh();
              });
}

void Directory::write() {
  dirty_ = false;
  if (!redis_.connected()) return;
  if (writing_) {
    dirty_ = true;  // once the write in flight is answered
    return;
  }
  LocalView view = snapshot_();
  std::string prefix = kKeyPrefix;
  std::vector<std::string> keys{prefix + "servers", prefix + "server:" + config_.server_id,
                                prefix + "rooms:" + config_.server_id,
                                prefix + "server_number:" + std::to_string(number_)};
  char load[32];
  snprintf(load, sizeof load, "%.4f", view.max_clients ? double(view.clients) / view.max_clients : 0.0);
  std::vector<std::string> args{config_.server_id,
                                std::to_string(config_.heartbeat_ms * 3),
                                config_.url,
                                std::to_string(view.clients),
                                std::to_string(view.rooms.size()),
                                load,
                                join(config_.types),
                                std::to_string(number_)};
  for (const auto& room : view.rooms) {
    nlohmann::json j;
    j["id"] = room.id;
    j["type"] = room.type;
    j["clients"] = room.clients;
    j["max_clients"] = room.max_clients;
    j["locked"] = room.locked;
    j["metadata"] = nlohmann::json::parse(room.metadata_json.empty() ? "{}" : room.metadata_json, nullptr, false);
    if (j["metadata"].is_discarded()) j["metadata"] = nlohmann::json::object();
    j["server"] = config_.server_id;
    args.push_back(std::to_string(room.id));
    args.push_back(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  writing_ = true;
  std::weak_ptr<bool> alive = alive_;
  bool sent = redis_.eval(kWriteScript, std::move(keys), std::move(args),
                          [this, alive](const RedisReply* reply, std::string_view) {
                            if (alive.expired()) return;
                            writing_ = false;
                            ++writes_;
                            if (reply && reply->is_error())
                              log_write(LogLevel::warn, tag_, "cluster: directory write failed: " + reply->str);
                            if (reply && reply->type == RedisReply::Type::integer && reply->integer < 0 &&
                                !number_conflict_logged_) {
                              number_conflict_logged_ = true;
                              log_write(LogLevel::error, tag_,
                                        "cluster: server number " + std::to_string(number_) +
                                            " is held by another server (Redis lost its keys?)");
                            }
                            if (dirty_) mark_dirty();
                          });
  if (!sent) writing_ = false;
}

void Directory::read(std::function<void()> done) {
  std::weak_ptr<bool> alive = alive_;
  bool sent = redis_.eval(kReadScript, {std::string(kKeyPrefix) + "servers"},
                          {std::to_string(config_.heartbeat_ms * 3), kKeyPrefix},
                          [this, alive, done](const RedisReply* reply, std::string_view) {
                            if (alive.expired()) return;
                            if (reply && reply->type == RedisReply::Type::array) apply_view(*reply);
                            if (done) done();
                          });
  if (!sent && done) {
    // Never inside the caller: from the loop.
    auto* idle = new uv_timer_t{};
    uv_timer_init(loop_, idle);
    idle->data = new std::function<void()>(std::move(done));
    uv_timer_start(
        idle,
        [](uv_timer_t* t) {
          auto* fn = static_cast<std::function<void()>*>(t->data);
          (*fn)();
          delete fn;
          uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        },
        0, 0);
  }
}

void Directory::apply_view(const RedisReply& reply) {
  std::vector<ServerEntry> servers;
  std::vector<RoomEntry> rooms;
  for (const auto& item : reply.elements) {
    if (item.type != RedisReply::Type::array || item.elements.size() != 3) continue;
    ServerEntry s;
    s.id = item.elements[0].str;
    const auto& fields = item.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      const std::string& k = fields[i].str;
      const std::string& v = fields[i + 1].str;
      if (k == "url") s.url = v;
      else if (k == "clients") s.clients = to_u32(v);
      else if (k == "rooms") s.rooms = to_u32(v);
      else if (k == "load") s.load = std::strtod(v.c_str(), nullptr);
      else if (k == "types") s.types = split(v);
      else if (k == "number") s.number = to_u32(v);
    }
    if (s.id != config_.server_id) {
      for (const auto& room_json : item.elements[2].elements) {
        auto j = nlohmann::json::parse(room_json.str, nullptr, false);
        if (!j.is_object()) continue;
        RoomEntry r;
        r.id = j.value("id", uint64_t{0});
        r.type = j.value("type", std::string());
        r.clients = j.value("clients", 0u);
        r.max_clients = j.value("max_clients", 0u);
        r.locked = j.value("locked", false);
        auto meta = j.find("metadata");
        r.metadata_json = meta != j.end() && meta->is_object() ? meta->dump() : "{}";
        r.server = s.id;
        if (r.id != 0 && !r.type.empty()) rooms.push_back(std::move(r));
      }
    }
    servers.push_back(std::move(s));
  }
  std::sort(rooms.begin(), rooms.end(), [](const RoomEntry& a, const RoomEntry& b) { return a.id < b.id; });
  servers_ = std::move(servers);
  remote_rooms_ = std::move(rooms);
}

const ServerEntry* Directory::find_server(std::string_view id) const {
  for (const auto& s : servers_)
    if (s.id == id) return &s;
  return nullptr;
}

const RoomEntry* Directory::find_room(uint64_t id) const {
  for (const auto& r : remote_rooms_)
    if (r.id == id) return &r;
  return nullptr;
}

std::string Directory::pick_server(std::string_view type, uint32_t local_clients, bool defined_here) const {
  std::string best = defined_here ? config_.server_id : std::string();
  uint32_t best_clients = defined_here ? local_clients : UINT32_MAX;
  for (const auto& s : servers_) {
    if (s.id == config_.server_id || s.url.empty()) continue;
    if (std::find(s.types.begin(), s.types.end(), type) == s.types.end()) continue;
    if (s.clients < best_clients) {
      best = s.id;
      best_clients = s.clients;
    }
  }
  return best;
}

}  // namespace nshost::cluster
