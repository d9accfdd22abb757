---@meta _
-- LuaLS (lua-language-server) annotations for nshost's Lua surface: every
-- builtin of the three kinds of Lua state (the server's, a client's, a room's),
-- the handler tables, and the userdata types scripts see. Reference:
-- docs/scripting.md, docs/rooms.md, docs/net.md, docs/shards.md. The shipped
-- modules (require "nshost.snapshot", "nshost.interest") are annotated in
-- types/nshost/*.lua. Use: put this folder in `workspace.library` of your
-- .luarc.json (README.md, "Editor completion").
--
-- tests/bindings/test_annotations.cpp holds this file to the running host: it
-- starts a real state of each kind, walks its globals, their tables and the
-- metatables in the registry, and fails on any builtin not annotated here for
-- that kind and any annotation naming nothing that exists. So the shape of
-- this file is a contract:
--   * The first description line of a block may start with the kinds of state
--     it exists in: [server, client, room] (any of the three). A function
--     without one inherits the kinds of its table's class.
--   * A global table: `---@class nshost.<name>lib` (with its kinds) followed by
--     `<name> = {}`; its functions are `function <name>.f(...) end` and its
--     other values `---@field` lines of that class.
--   * A userdata type: `---@class <metatable name>` (the luaL_newmetatable
--     name, e.g. nshost.room) with its kinds, followed by `local X = {}`; its
--     methods are `function X:m(...) end`, the values its __index gives are
--     `---@field` lines.
--   * Handlers: the fields of the classes nshost.server_handlers,
--     nshost.client_handlers and nshost.room_handlers (the handler names the
--     host calls on `server`, `client` and `room`).
--   * Any other class (no kinds, not followed by a binding) is the shape of a
--     table passed or returned, and is not checked.
-- State sync's builtins go into the class of their table (room, rooms, the
-- nshost.room handle) like the rest.

---@alias nshost.channel
---| "reliable"   # ENet reliable and ordered (the default)
---| "unreliable" # unreliable and sequenced: a stale message is dropped, never delivered late

---An integer naming one net.* connection, listener or request of this state (1, 2, 3, ..., never reused).
---@alias nshost.net_handle integer

---@alias nshost.net_status
---| "building"   # HTTP: created, not sent
---| "pending"    # HTTP: sent, no answer yet
---| "connecting" # TCP, WebSocket
---| "connected"  # TCP, WebSocket; a TCP listener while listening
---| "done"       # HTTP: response complete
---| "error"      # failed; finished
---| "closed"     # closed cleanly by the peer; finished

-- Handlers -------------------------------------------------------------------

---The handlers the host calls on `server` in the server role (docs/scripting.md "Events").
---Every one is optional.
---@class nshost.server_handlers
---@field connect? fun(c: nshost.client, handoff: string) A client completed the handshake and holds a slot. `handoff`: bytes, `""` on a fresh connect, else what the client carried from another shard.
---@field disconnect? fun(c: nshost.client, reason: "left"|"timeout"|"kicked"|"hop"|"redirect", undelivered: integer) Any departure of a joined client. `undelivered`: reliable messages sent to it that it never acknowledged.
---@field lost? fun(c: nshost.client) The client's link dropped without a clean leave; its slot is held for --resume-grace (ms).
---@field resumed? fun(c: nshost.client) The client of a lost slot came back within the window; reliable messages were replayed in order.
---@field receive? fun(c: nshost.client, data: string, channel: nshost.channel) A message arrived (as it arrives, not held until the tick).
---@field tick? fun(tick_num: integer) Every tick, tick_rate() times a second (Hz); `tick_num` counts 0, 1, 2, ... without gaps.
---@field shutdown? fun() SIGINT/SIGTERM or sys.quit, before clients are told. The script's last word.
---@field auth? fun(token: string?, project_id: string?, address: string): (boolean|table|nil), string? A fresh join, before a slot is given. Return nil/true to admit, a table to admit with claims (c.auth), `false, reason` to reject. `address`: "ip:port".
---@field reload? fun(old_version: integer) After a hot reload (--watch) ran the script again cleanly: the code that was live had version `old_version` (1 for the first load, +1 per reload). Migrate data kept in globals here (docs/operations.md "Hot reload").

---The handlers the host calls on `client` in the client role (docs/scripting.md "Events", docs/rooms.md "Events").
---Every one is optional.
---@class nshost.client_handlers
---@field connect? fun(handoff: string, undelivered: integer) The server welcomed this client. `handoff`: the bytes this client carried (`""` on a fresh join).
---@field disconnect? fun(reason: string, undelivered: integer) The connection ended or never came up: "server_left", "connect_failed", "rejected: <why>", "kicked: <why>", "lost", "left", "hop_failed: <why>", ... (docs/scripting.md).
---@field lost? fun() The link dropped; the client reconnects with backoff (--reconnect). Reliable sends are queued for the replay.
---@field resumed? fun() A reconnect resumed the session (same slot, server state intact).
---@field receive? fun(data: string, channel: nshost.channel) A message from the server arrived.
---@field tick? fun(tick_num: integer, dt: number) Every client tick, from start-up on. `dt`: seconds since the previous client tick.
---@field room_message? fun(r: nshost.room, type: string, data: any) A message from a room this client is in (`data` decoded; a string of raw bytes for a .bytes message).
---@field room_left? fun(r: nshost.room, reason: string) The server removed this client from a room ("kicked", "disposed", "closed: <reason>", "memory") or the session ended ("disconnected"). `r` is already stale.
---@field room_state? fun(r: nshost.room, state: table, changes?: any[][]) After each state snapshot or patch applied (docs/state.md "Client"): `state` is r.state; `changes` the changed paths (arrays of keys; `{{}}` after a snapshot), built only when the handler declares 3 or more parameters.
---@field match_found? fun(match: nshost.match) A match formed and this client is seated in `match.room` (docs/matchmaking.md).
---@field match_failed? fun(room_type: string, reason: string) A match formed but this client could not be seated (room.join refused it, "room failed", "too many rooms"); it is no longer queued.

---The handlers the host calls on `room` in a room's state (docs/rooms.md "Handlers").
---Every one is optional.
---@class nshost.room_handlers
---@field create? fun(options: table) Once, when a join opens the room, before the first room.join. `options`: the first joiner's options (`{}` when none).
---@field join? fun(c: nshost.room_client, options: table): (boolean?), string? A client asks for a seat. Return `false, "reason"` to refuse (reason cut to 200 bytes); anything else seats it.
---@field leave? fun(c: nshost.room_client, reason: string) A seated client left: "left", "timeout", "kicked", "disposed" or "closed: <reason>".
---@field message? fun(c: nshost.room_client, type: string, data: any) A client's room message (`data` decoded; a string of raw bytes for a .bytes message).
---@field tick? fun(tick_num: integer) Every tick of the room's own timer (its tick_rate, Hz). Defined after the room file's first run: no effect (a hot reload that defines it starts the tick).
---@field dispose? fun() Once, after the last client left (auto_dispose) or after room.close removed everyone.
---@field reload? fun(old_version: integer) After a hot reload (--watch) ran the room file again cleanly in this room's state, between two of its ticks: the room's code had version `old_version` (1 for the first load, +1 per reload).

---[server, client] The handler table of the server role: define `function server.connect(c, handoff)` and the rest
---(nshost.server_handlers). It exists in both roles so one file serves both; the host calls it only as a server.
---@class nshost.serverlib: nshost.server_handlers
server = {}

---[server, client] The handler table of the client role: define `function client.tick(tick_num, dt)` and the rest
---(nshost.client_handlers). It exists in both roles so one file serves both; the host calls it only as a client.
---@class nshost.clientlib: nshost.client_handlers
client = {}

-- Tick and slots ---------------------------------------------------------------

---[server, client, room] This state's own tick rate, in Hz (on a client its --tick-rate; in a room the room's).
---@return integer hz
function tick_rate() end

---[server, client, room] Sets this state's tick rate; the next tick is due one new period from now.
---Raises unless `hz` is an integer in 1..1000.
---@param hz integer ticks per second (Hz), 1..1000
function set_tick_rate(hz) end

---[server, client, room] Server: its slot count (--max-clients). Client: the joined server's, 0 before joining.
---Room: its type's max_clients.
---@return integer
function max_clients() end

---[client] The joined server's tick rate in Hz, as its welcome gave it; nil before joining, during a hop and after
---the connection ended.
---@return integer? hz
function server_tick_rate() end

---[client] The latest tick number of the joined server this client heard of: from the welcome, then from a clock
---message about once a second (so up to a second plus half an RTT old). nil when server_tick_rate() is.
---@return integer? tick
function server_tick() end

---[server] The client's slot, in [0, max_clients()). Raises "stale client handle" once its connection is gone.
---@param c nshost.client
---@return integer slot
function slot(c) end

---[server] True while `c`'s connection is live (false inside its server.disconnect, after a kick, for a stale
---handle and for anything that is not a handle). Never raises.
---@param c any
---@return boolean
function connected(c) end

-- Sending ----------------------------------------------------------------------

---[server, client] Server: `send(c, data [, channel])` queues `data` for client `c`. Client: `send(data [, channel])`
---queues it for the server. Only from a handler or callback; raises past --max-message-size (bytes), on a bad
---channel and on a stale handle. Failures: nil, "...", "ENOTCONN" (not connected, departing, or unreliable data
---while the link is down); nil, "... resume buffer ... full ...", "ENOBUFS" (past --resume-buffer-size bytes).
---@param c nshost.client
---@param data string bytes
---@param channel? nshost.channel default "reliable"
---@return true? ok
---@return string? message
---@return string? code
---@overload fun(data: string, channel?: nshost.channel): true?, string?, string?
function send(c, data, channel) end

---[server] Sends `data` to every live client (one shared ENet packet), or only to the handles in `targets`
---(departing ones are skipped). Only from a handler; raises as `send`, and on a `targets` entry that is not a
---client handle or is stale.
---@param data string bytes
---@param channel? nshost.channel default "reliable"
---@param targets? nshost.client[] a sequence of client handles
---@return integer count how many clients it was sent to
function broadcast(data, channel, targets) end

---[server] Disconnects `c`; it gets client.disconnect("kicked: " .. reason), this script server.disconnect(c, "kicked").
---Only from a handler. nil, "the client is already departing", "EALREADY" if it is.
---@param c nshost.client
---@param reason? string default "kicked by server", cut at 255 bytes
---@return true? ok
---@return string? message
---@return string? code
function kick(c, reason) end

---[server] Sends `c` to another shard (docs/shards.md) carrying `handoff` to that shard's server.connect; this script
---then gets server.disconnect(c, "redirect"). Only from a handler; raises on a malformed URL or a handoff over
---65536 bytes. nil, "the client is already departing", "EALREADY" if it is.
---@param c nshost.client
---@param url string nshost://HOST[:PORT]
---@param handoff? string bytes, default "", at most 65536 bytes
---@return true? ok
---@return string? message
---@return string? code
function redirect(c, url, handoff) end

---[client] Leaves this shard and joins `url` carrying `handoff`; ends in client.connect(handoff) or
---client.disconnect("hop_failed: <why>"). Only from a handler; raises on a malformed URL.
---nil, "...", "EBUSY" while a connection, hop or fetch is under way; nil, "...", "ESHUTDOWN" when stopping.
---@param url string nshost://HOST[:PORT]
---@param handoff? string bytes, default "", at most 65536 bytes
---@return true? ok
---@return string? message
---@return string? code
function hop(url, handoff) end

-- sys, log ---------------------------------------------------------------------

---[server, client, room] The process and this state.
---@class nshost.syslib
sys = {}

---"server" or "client" (a room's state says "server"). Under --role=host the
---server's state says "server" and the local client's "client".
---@return "server"|"client"
function sys.runtime_role() end

---True in every state of a listen server (--role=host): the server's, its
---rooms' and the local client's; false under --role=server and --role=client.
---@return boolean
function sys.is_listen_server() end

---True under --headless.
---@return boolean
function sys.is_headless() end

---Monotonic time in seconds (float, nanosecond clock) since the process started.
---@return number seconds
function sys.time() end

---[server, client] Stops the role cleanly after the current handler (a server runs server.shutdown; a client leaves
---with client.disconnect("left")). Not in a room's state. Raises on a code outside 0..255.
---@param code? integer exit code 0..255, default 0
function sys.quit(code) end

---True in a sandboxed state (a fetched script, or --sandbox), where the standard library is cut down.
---@return boolean
function sys.sandboxed() end

---1..N inside bot N of --bots=N; nil on the server and in a client that is not a bot.
---@return integer?
function sys.bot_index() end

---[server, client, room] One line to stderr, `nshost[<tag>] <level>: <args>`, the arguments through tostring joined
---by spaces; lines below --log-level are dropped.
---@class nshost.loglib
log = {}

---@param ... any
function log.debug(...) end

---@param ... any
function log.info(...) end

---@param ... any
function log.warn(...) end

---@param ... any
function log.error(...) end

-- timer ------------------------------------------------------------------------

---[server, client] Timers on the loop, millisecond resolution; callbacks run as handlers (limits, errors, --strict).
---docs/scripting.md "Timers".
---@class nshost.timerlib
timer = {}

---Runs `fn(handle)` once, `seconds` from now (rounded up to whole ms). Raises unless 0 < seconds <= 1e6 and `fn`
---is a function. nil, "too many timers", "EMFILE" past 4096 pending timers in this state.
---@param seconds number delay in seconds, (0, 1e6]
---@param fn fun(handle: nshost.timer)
---@return nshost.timer? handle
---@return string? message
---@return string? code
function timer.after(seconds, fn) end

---As timer.after, but `fn(handle)` runs every `seconds` until cancelled (missed beats are skipped, not replayed).
---@param seconds number interval in seconds, (0, 1e6]
---@param fn fun(handle: nshost.timer)
---@return nshost.timer? handle
---@return string? message
---@return string? code
function timer.every(seconds, fn) end

---[server, client] A timer from timer.after or timer.every; tostring gives "timer#N".
---@class nshost.timer
local Timer = {}

---Stops the timer. True if it was pending; false if it already fired (timer.after) or was cancelled.
---@return boolean was_pending
function Timer:cancel() end

-- term -------------------------------------------------------------------------

---[client] The terminal a person plays in (docs/scripting.md "term"): keys read from stdin in raw mode, polled
---each tick; text written to stdout. Only in a client's state that is not a bot and not sandboxed: elsewhere
---`term` is nil. A --headless client has it but cannot open it. The mode is restored by term.close, when the state closes, at exit and on a signal.
---@class nshost.termlib
term = {}

---Puts stdin (a libuv TTY) in raw mode and starts reading keys; ctrl-c still stops the client (SIGINT). Opening an
---open terminal does nothing. nil, "not a terminal", "ENOTTY" when stdin is not a terminal;
---nil, "headless client (no terminal input)", "ENOTTY" under --headless.
---@return true? ok
---@return string? message
---@return string? code
function term.open() end

---The keys typed since the last call, oldest first: a character as itself ("w", "W", "1"), "up", "down", "left",
---"right", "home", "end", "insert", "delete", "pageup", "pagedown", "enter", "tab", "space", "backspace",
---"escape", "ctrl-a".."ctrl-z". At most 256 are held between two calls (the newest past it are dropped).
---Raises unless the terminal is open.
---@return string[] keys
function term.keys() end

---Writes `text` (bytes, escape sequences included) to stdout at once. Raises past 1 MiB.
---nil, "cannot write to stdout", "EIO" when the write fails.
---@param text string
---@return true? ok
---@return string? message
---@return string? code
function term.write(text) end

---The terminal's size in characters (stdout's, else stdin's). nil, "not a terminal", "ENOTTY" when neither is one.
---@return integer? cols
---@return integer|string? rows_or_message
---@return string? code
function term.size() end

---Restores the terminal's mode and stops reading keys. True if it was open; calling it again is harmless.
---@return boolean was_open
function term.close() end

-- Client handles ---------------------------------------------------------------

---[server, client] The server script's handle of one connection: the same userdata for every event of it (usable
---as a table key); tostring gives "client(slot=3)" ("client(slot=3, stale)" once gone). Only the server role
---creates them.
---@class nshost.client
---@field id integer the session id: from 1, never reused by this server process; kept across a resume
---@field auth table? the claims table server.auth returned, or nil
local ClientHandle = {}

-- json -------------------------------------------------------------------------

---[server, client, room] JSON (RFC 8259) encode and decode; docs/net.md "json".
---@class nshost.jsonlib
---@field null lightuserdata JSON null: what decode gives for null, and what encode writes as null
json = {}

---Encodes nil/json.null, booleans, integers, finite floats, UTF-8 strings, sequences (arrays) and string-keyed
---tables (objects, keys in byte order). nil, message, "EINVAL" on what it cannot encode (NaN, a function, mixed
---keys, invalid UTF-8, nesting past 200); nil, message, "ENOMEM" past --memory-limit (bytes).
---@param value any
---@return string? text
---@return string? message
---@return string? code
function json.encode(value) end

---Decodes JSON text: objects to tables, arrays to sequences, integers to integers, null to json.null.
---nil, message, "EINVAL" on bad syntax or nesting past 200; nil, message, "ENOMEM" past --memory-limit. Raises on
---a non-string.
---@param text string
---@return any value
---@return string? message
---@return string? code
function json.decode(text) end

-- net --------------------------------------------------------------------------

---One entry of net.poll_event() / net.events().
---@class nshost.net_event
---@field type "connected"|"data"|"message"|"accepted"|"http_done"|"error"|"closed"
---@field handle nshost.net_handle
---@field data string|integer|nil "data"/"message": the bytes; "accepted": the new client's handle; "error": "ECODE: message"

---An HTTP response from net.http_response: either status/body/headers or error.
---@class nshost.http_response
---@field status integer? the HTTP status code (404 and 500 included)
---@field body string? the body (empty for HEAD), at most 64 MiB
---@field headers table<string, string>? lower-case names; repeated headers joined with ", "
---@field error string? "ECODE: message (url)" when the request failed

---[server, client] TCP, HTTP(S) and WebSocket(S), polled (docs/net.md). Handles are integers; an unknown handle
---gives nil or does nothing. In a sandboxed state only --allow-net host:port pairs are reachable (else "EACCES").
---Every byte net holds counts against --memory-limit ("ENOMEM").
---@class nshost.netlib
net = {}

---The handle's status, or nil for an unknown handle.
---@param h nshost.net_handle
---@return nshost.net_status?
function net.status(h) end

---Pops the next event, nil when the queue is empty. Drain it every tick.
---@return nshost.net_event?
function net.poll_event() end

---`for evt in net.events() do ... end`: pops events until the queue is empty.
---@return fun(): nshost.net_event?
function net.events() end

---Closes any handle and forgets it (TCP: after its queued writes; HTTP: cancelled; WebSocket: close frame 1000).
---@param h nshost.net_handle
function net.close(h) end

---Settings for connections and requests started afterwards. Raises on an unknown field or a wrong type.
---@param options {tls_verify?: boolean, ca_file?: string, connect_timeout_ms?: integer, request_timeout_ms?: integer} timeouts in ms, 1..3600000 (defaults 10000 and 30000)
function net.configure(options) end

---Opens a TCP connection (status "connecting", then a "connected" or "error" event).
---@param host string a name or an IPv4/IPv6 address
---@param port integer 1..65535
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.tcp_connect(host, port) end

---Queues bytes. nil, "not connected yet", "ENOTCONN"; nil, "send queue full (16 MiB unsent)", "ENOBUFS";
---nil, ..., "ENOMEM"; nil, "not an open connection", "EBADF".
---@param h nshost.net_handle
---@param data string bytes
---@return true? ok
---@return string? message
---@return string? code
function net.tcp_send(h, data) end

---Pops the next unread chunk of bytes, nil if none.
---@param h nshost.net_handle
---@return string?
function net.tcp_recv(h) end

---Same as net.close(h).
---@param h nshost.net_handle
function net.tcp_close(h) end

---Listens for TCP clients; each arrives as an "accepted" event (or net.tcp_accept). Always "EACCES" in the sandbox.
---@param port integer 0..65535 (0: any free port, see net.tcp_port)
---@param bind? string address to bind, default "0.0.0.0"
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.tcp_listen(port, bind) end

---Pops the next accepted client handle of listener `h` not yet delivered by an event; nil if none.
---@param h nshost.net_handle
---@return nshost.net_handle?
function net.tcp_accept(h) end

---Same as net.close(h) (a listener stops).
---@param h nshost.net_handle
function net.tcp_stop(h) end

---The local port of a listener or connection, nil if unknown or closed.
---@param h nshost.net_handle
---@return integer?
function net.tcp_port(h) end

---Creates an HTTP request in status "building"; nothing is sent until net.http_send. Raises on a method that is
---not an HTTP token.
---@param method string any case, e.g. "GET"
---@param url string http:// or https://
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_request(method, url) end

---As net.http_request, with a request body.
---@param method string
---@param url string
---@param body string bytes
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_request_body(method, url, body) end

---Sets (or replaces) a header of a request still "building". Raises on a name that is not a token or a value
---with CR, LF or NUL.
---@param h nshost.net_handle
---@param name string
---@param value string
function net.http_set_header(h, name, value) end

---Each pair as net.http_set_header.
---@param h nshost.net_handle
---@param headers table<string, string|number>
function net.http_set_headers(h, headers) end

---Sends a "building" request (status becomes "pending").
---@param h nshost.net_handle
function net.http_send(h) end

---Creates and sends a GET request.
---@param url string
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_get(url) end

---Creates and sends a HEAD request.
---@param url string
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_head(url) end

---Creates and sends a DELETE request.
---@param url string
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_delete(url) end

---Creates and sends an OPTIONS request.
---@param url string
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_options(url) end

---Creates and sends a POST request.
---@param url string
---@param body string bytes
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_post(url, body) end

---Creates and sends a PUT request.
---@param url string
---@param body string bytes
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_put(url, body) end

---Creates and sends a PATCH request.
---@param url string
---@param body string bytes
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.http_patch(url, body) end

---The response once done (or {error = ...} when the request failed); nil while building/pending or unknown.
---@param h nshost.net_handle
---@return nshost.http_response?
function net.http_response(h) end

---One response header, matched case-insensitively; nil if absent, failed, pending or unknown.
---@param h nshost.net_handle
---@param name string
---@return string?
function net.http_response_header(h, name) end

---Opens a WebSocket (nshost is the WebSocket client): "connected" follows the upgrade, or "error".
---@param url string ws:// or wss://
---@return nshost.net_handle? h
---@return string? message
---@return string? code
function net.ws_connect(url) end

---Queues one text message. nil, ..., "ENOTCONN" / "ENOBUFS" (16 MiB unsent) / "ENOMEM" / "EBADF".
---@param h nshost.net_handle
---@param text string UTF-8
---@return true? ok
---@return string? message
---@return string? code
function net.ws_send(h, text) end

---Queues one binary message; failures as net.ws_send.
---@param h nshost.net_handle
---@param data string bytes
---@return true? ok
---@return string? message
---@return string? code
function net.ws_send_binary(h, data) end

---Pops the next unread message (text or binary), nil if none.
---@param h nshost.net_handle
---@return string?
function net.ws_recv(h) end

---Same as net.close(h).
---@param h nshost.net_handle
function net.ws_close(h) end

-- rooms --------------------------------------------------------------------------

---One room of a rooms.list answer.
---@class nshost.room_info
---@field id integer
---@field type string
---@field clients integer
---@field max_clients integer
---@field locked boolean
---@field metadata table? what room.set_metadata set

---The rooms.list answer: open rooms, oldest first.
---@class nshost.room_list: { [integer]: nshost.room_info }
---@field truncated boolean? true when the server left rooms out to stay within --max-message-size

---[server, client] Rooms (docs/rooms.md). The server script declares room types (rooms.define); a client joins
---rooms. A request's callback is called exactly once, later, from the loop, as a handler; the call itself returns
---true, or nil, "too many requests (64 outstanding)", "EBUSY" / nil, "server has no rooms", "ENOTSUP" /
---nil, "message of N bytes ...", "EMSGSIZE". The callback gets the answer, or nil, reason, "EREFUSED" (the server
---refused: "full", "locked", ...), nil, "not connected", "ENOTCONN", nil, "malformed answer ...", "EPROTO".
---@class nshost.roomslib
rooms = {}

---[server] Declares a room type; only while the script loads. Raises on misuse (a bad option, an unreadable file,
---a type defined twice).
---@param type string 1..128 bytes: the name clients ask for
---@param path string the room's Lua file, relative to the server script's directory
---@param options? {max_clients?: integer, auto_dispose?: boolean, unreliable?: string[], tick_rate?: integer} max_clients 1..4096 (default 64); tick_rate 1..1000 Hz (default --tick-rate)
function rooms.define(type, path, options) end

---[client] Joins the oldest open room of `type` with a free seat whose room.join accepts, or a new one.
---@param type string
---@param options table? sent to room.create/room.join (nil, booleans, numbers, strings, tables of those)
---@param cb fun(r: nshost.room?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function rooms.join_or_create(type, options, cb) end

---[client] Joins exactly the room `room_id`.
---@param room_id integer >= 1
---@param options table?
---@param cb fun(r: nshost.room?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function rooms.join(room_id, options, cb) end

---[client] Creates a new room of `type` and joins it.
---@param type string
---@param options table?
---@param cb fun(r: nshost.room?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function rooms.create(type, options, cb) end

---[client] Lists the open rooms (of `type`, or all).
---@param type string?
---@param cb fun(list: nshost.room_list?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function rooms.list(type, cb) end

---[client] The welcome's session id (the server's c.id for this client) while joined, else nil.
---@return integer?
function rooms.session_id() end

---[client] "msgpack" or "json" (the codec the server picked) while joined to a server with rooms, else nil.
---@return "msgpack"|"json"|nil
function rooms.codec() end

---What client.match_found gets (seed 003 match.found).
---@class nshost.match
---@field room nshost.room the room this client is now seated in (as a rooms.join_or_create callback gives it)
---@field room_type string
---@field size integer how many players were seated
---@field participants integer[] their session ids (rooms.session_id() of each)

---[server, client] Matchmaking (docs/matchmaking.md). The server script says which room types players can queue
---for (matchmaking.define); a client queues and hears client.match_found, already seated.
---@class nshost.matchmakinglib
matchmaking = {}

---[server] Gives room type `room_type` (already rooms.define'd) a queue; only while the script loads. Raises on
---misuse (an unknown option, size over the type's max_clients, min_size over size, defined twice).
---@param room_type string
---@param options {size: integer, min_size?: integer, max_wait_s?: number, match?: fun(a: table, b: table): boolean} size: players per match; min_size (default size): after max_wait_s (default 30) a group this big may start; match: whether two waiting players' properties may play together (without it: anyone, oldest first)
function matchmaking.define(room_type, options) end

---[client] Queues this client for a match of `room_type`. Returns true when the request is sent, else nil,
---"not connected", "ENOTCONN" / nil, "too many requests (64 outstanding)", "EBUSY" / nil, "server has no rooms",
---"ENOTSUP" / nil, "message of N bytes ...", "EMSGSIZE" (cb is then never called). cb(true) when queued, or cb(nil,
---reason, "EREFUSED"): "already queued", "queue full", "size must be N for this room type", ...; without cb a
---refusal is logged.
---@param room_type string
---@param size integer must equal the server's size for the type
---@param properties? table what the server's match(a, b) and the room's room.join(c, options) get (at most 4096 bytes encoded)
---@param cb? fun(ok: true?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function matchmaking.enqueue(room_type, size, properties, cb) end

---[client] Leaves the queue of `room_type` (every queue when nil). Returns as enqueue does; cb(true), or
---cb(nil, "not queued", "EREFUSED").
---@param room_type? string
---@param cb? fun(ok: true?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function matchmaking.dequeue(room_type, cb) end

---[client] One membership of a room (from a rooms.* callback); the same userdata for every event of it.
---tostring gives "room(id=5, type=arena)" (", gone" once stale). A stale handle's calls return
---nil, "room N is gone", "ENOROOM".
---@class nshost.room
---@field id integer the room id (also on a stale handle)
---@field type string the room type (also on a stale handle)
---@field state table? the room's state as this client's view allows (docs/state.md "Client"), plain tables; nil before the first snapshot and on a stale handle. A snapshot builds a new tree: read through r.state
local RoomHandle = {}

---Calls `fn(key, value, old)` for each change of a path matching `pattern` after a snapshot or patch applied:
---`key` the key the last "*" matched (else the pattern's last key), `value` now (nil when removed), `old` before
---(nil when new). At most 1024 listeners per room: nil, "too many listeners (1024 per room)", "EBUSY".
---Raises on a bad pattern (1 to 66 string/integer keys, "*" any key) or a non-function `fn`.
---@param pattern (string|integer)[]
---@param fn fun(key: string|integer, value: any, old: any)
---@return integer? id for r:off_change
---@return string? message
---@return string? code
function RoomHandle:on_change(pattern, fn) end

---Removes a listener r:on_change added.
---@param id integer
---@return boolean removed false when no listener had that id
function RoomHandle:off_change(id) end

---Counters of this room's state mirror: patches, snapshots (applied), resyncs (sent), checksum_mismatches, gaps,
---decode_errors, ignored (patches while waiting for a snapshot), acks (sent), seq (the last applied frame's seq
---extended past 16 bits), bytes (of the snapshot and patch frames received, without ENet's headers).
---@return {patches: integer, snapshots: integer, resyncs: integer, checksum_mismatches: integer, gaps: integer, decode_errors: integer, ignored: integer, acks: integer, seq: integer, bytes: integer}? stats
---@return string? message
---@return string? code
function RoomHandle:state_stats() end

---Sends a room message (seed 003 room.message). nil, ..., "ENOROOM" / "ENOTCONN" / "EMSGSIZE" (the encoded
---message past --max-message-size bytes); raises on data the codec cannot carry.
---@param type string the game's message type
---@param data? any nil, booleans, numbers, strings, tables of those
---@param channel? nshost.channel default "reliable"
---@return true? ok
---@return string? message
---@return string? code
function RoomHandle:send(type, data, channel) end

---Sends raw bytes untouched (seed 003 room.message.bytes); failures as r:send.
---@param type string
---@param bytes string
---@param channel? nshost.channel default "reliable"
---@return true? ok
---@return string? message
---@return string? code
function RoomHandle:send_bytes(type, bytes, channel) end

---Leaves the room: the handle is stale at once and no client.room_left follows. With `cb`: cb(true) or
---cb(nil, reason, code) when the server answers.
---@param cb? fun(ok: true?, message: string?, code: string?)
---@return true? ok
---@return string? message
---@return string? code
function RoomHandle:leave(cb) end

-- A room's state -------------------------------------------------------------------

---[room] The room's table: its builtins, and the handlers the room file defines on it (nshost.room_handlers).
---Sending needs a handler (or a callback).
---@class nshost.roomlib: nshost.room_handlers
---@field id integer this room's id
---@field type string its type name
---@field state table the replicated state (docs/state.md "Server"): plain tables, diffed at each patch interval; keys strings or integers, values booleans, numbers, strings, tables
room = {}

---The seated clients' handles, in join order.
---@return nshost.room_client[]
function room.clients() end

---Sends a message to one seated client. nil, "client N is not in room M", "ENOTCONN"; nil, "... not connected
---(its link is down)", "ENOTCONN". Raises on data that cannot be encoded or past --max-message-size (bytes).
---@param c nshost.room_client
---@param type string
---@param data any
---@param channel? nshost.channel nil: the type's unreliable policy, else reliable
---@return true? ok
---@return string? message
---@return string? code
function room.send(c, type, data, channel) end

---Sends to every seated client (but `except`).
---@param type string
---@param data any
---@param channel? nshost.channel nil: the type's policy
---@param except? nshost.room_client
---@return integer count how many clients it was queued for
function room.broadcast(type, data, channel, except) end

---As room.send, with raw bytes that travel untouched.
---@param c nshost.room_client
---@param type string
---@param bytes string
---@param channel? nshost.channel
---@return true? ok
---@return string? message
---@return string? code
function room.send_bytes(c, type, bytes, channel) end

---As room.broadcast, with raw bytes.
---@param type string
---@param bytes string
---@param channel? nshost.channel
---@param except? nshost.room_client
---@return integer count
function room.broadcast_bytes(type, bytes, channel, except) end

---The room takes no new joins.
function room.lock() end

---The room takes joins again.
function room.unlock() end

---What room.list shows as this room's metadata (nil clears it). Raises on what cannot be encoded or over 16 KiB.
---@param metadata table?
function room.set_metadata(metadata) end

---After the running handler: every client leaves ("closed: <reason>", or "disposed"), then room.dispose runs.
---@param reason? string cut to 200 bytes
function room.close(reason) end

---The room's own tick rate (room.tick). Raises unless `hz` is an integer 1..1000.
---@param hz integer Hz
function room.set_tick_rate(hz) end

---Declares the state's types (docs/state.md "room.define_state"): a type is "bool", "f32", "f64", "i8", "u8",
---"i16", "u16", "i32", "u32", "i64", "string", "any", `{ map = T }` or a table of fields (a struct, at most 62).
---Only before the first client joins; raises after, and on a malformed schema.
---@param schema table
function room.define_state(schema) end

---Patches every tick_rate / hz ticks instead of every tick. Raises unless `hz` is an integer 1..the room's tick rate.
---@param hz integer Hz
function room.set_patch_rate(hz) end

---The client's view as an id set of entity keys (created empty on the first call: the client then sees no entity
---until keys are added). nil, message, "ENOTCONN" for a client not in the room.
---@param c nshost.room_client
---@return nshost.room_view? view
---@return string? message
---@return string? code
function room.view(c) end

---A function view: `fn(collection, key, entity)` returns truthy to admit, called for every entity at every patch
---interval for that client. nil removes any view (the client gets a snapshot). true, or nil, message, "ENOTCONN".
---@param c nshost.room_client
---@param fn? fun(collection: string|integer, key: string|integer, entity: table): any
---@return true? ok
---@return string? message
---@return string? code
function room.set_view(c, fn) end

---The room's state counters since it opened: patches, snapshots (frames queued, one per recipient), bytes,
---resyncs, resyncs_ignored, stalled, divergences, errors.
---@return {patches: integer, snapshots: integer, bytes: integer, resyncs: integer, resyncs_ignored: integer, stalled: integer, divergences: integer, errors: integer}
function room.state_stats() end

---[room] A client's view as an id set (room.view(c)): the entity keys it is shown, in any collection.
---add, remove and clear return true, or nil, message, "ENOTCONN" once the client left ("EINVAL" when its view is
---a function now).
---@class nshost.room_view
local RoomView = {}

---At most 65536 keys per view: past it nil, message, "ENOBUFS". Raises on a key over 1024 bytes.
---@param key string|integer an entity key
---@return true? ok
---@return string? message
---@return string? code
function RoomView:add(key) end

---@param key string|integer
---@return true? ok
---@return string? message
---@return string? code
function RoomView:remove(key) end

---@param key string|integer
---@return boolean
function RoomView:has(key) end

---@return true? ok
---@return string? message
---@return string? code
function RoomView:clear() end

---@return integer count of keys
function RoomView:size() end

---[room] A room's handle of one seated client: the same userdata for every event of it (usable as a table key);
---tostring gives "room_client(id=N)".
---@class nshost.room_client
---@field id integer the session id (the server script's c.id)
---@field auth table? a copy of the session's claims (server.auth), or nil
local RoomClient = {}
