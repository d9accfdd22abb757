-- Seed 001 "Example: POST with Headers", in Lua (URL from URL instead of
-- https://api.example.com/submit). The seed builds the request without a
-- body; REQ is kept so the test can read the response.
local req = net.http_request("post", os.getenv("URL"))
net.http_set_header(req, "Content-Type", "application/json")
net.http_set_header(req, "Authorization", "Bearer my-token")
net.http_send(req)
REQ = req
