-- Sandbox probe: tries every way out of the sandbox and prints what happened.
-- Runs on connect when fetched (client) and on the first tick when run as a
-- local --sandbox server (an unsandboxed server just serves this tree).
local function try(label, f)
  local ok, result, extra = pcall(f)
  print(("probe %s ok=%s result=%s %s"):format(label, tostring(ok), tostring(result), tostring(extra)))
end

local function probe()
  try("io", function() return io.write("x") end)
  try("io.open", function() return io.open("/etc/passwd") end)
  try("os.execute", function() return os.execute("echo pwned") end)
  try("os.getenv", function() return os.getenv("HOME") end)
  try("os.time", function() return type(os.time()) end)
  try("os.clock", function() return type(os.clock()) end)
  try("debug", function() return debug.getinfo(1) end)
  try("dofile", function() return dofile("/etc/passwd") end)
  try("loadfile", function() return loadfile("/etc/passwd") end)
  try("string.dump", function() return string.dump(probe) end)
  try("package.loadlib", function() return package.loadlib("libc.so.6", "system") end)
  try("binary load", function() return load("\27Lua\84\0\25\147\13\10\26\10", "x", "b") end)
  try("binary text-mode load", function() return load("\27Lua\84\0\25\147\13\10\26\10") end)
  try("text load", function() return load("return 6 * 7")() end)
  try("require escape", function() return require("..etc.passwd") end)
  try("require absent", function() return require("no_such_module") end)
  try("require shipped", function() return type(require("nshost.snapshot")) end)
  print("probe done")
end

function server.tick(n)
  if n == 1 and sys.sandboxed() then
    probe()
    sys.quit()
  end
end

function client.connect()
  probe()
end
