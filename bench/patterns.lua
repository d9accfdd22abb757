-- Pattern workloads for bench/patterns_bench.cpp, which runs each one in a
-- plain Lua 5.4 state (the standard string library) and in an nshost state
-- (the bounded matcher of runtime/script/string_patterns.cpp) and prints the time
-- ratio. Each workload runs over about 100 KB of text and returns a value
-- that must be the same in both states.
local rows, lines, csv = {}, {}, {}
for i = 1, 2000 do
  rows[#rows + 1] = ("  player%d = %d, score %d.%d ;  "):format(i, i * 7919 % 100000, i % 97, i % 10)
  lines[#lines + 1] = ("   line %d with some words in it   "):format(i)
  csv[#csv + 1] = ("f%d"):format(i * 31 % 1000)
end
local text = table.concat(rows, "\n")       -- ~100 KB
csv = table.concat(csv, ","):rep(12)        -- ~100 KB of comma-separated fields
local needle = text .. " needle7"

workloads = {
  { "split on commas: for f in s:gmatch('[^,]+')", function()
      local n = 0
      for _ in csv:gmatch("[^,]+") do n = n + 1 end
      return n
    end },
  { "trim 2000 lines: line:match('^%s*(.-)%s*$')", function()
      local n = 0
      for _, line in ipairs(lines) do n = n + #line:match("^%s*(.-)%s*$") end
      return n
    end },
  { "numbers: for d in s:gmatch('%d+')", function()
      local n = 0
      for d in text:gmatch("%d+") do n = n + #d end
      return n
    end },
  { "replace numbers: s:gsub('%d+', '#')", function()
      local out, n = text:gsub("%d+", "#")
      return #out + n
    end },
  { "words through a function: s:gsub('%a+', string.upper)", function()
      local out, n = text:gsub("%a+", string.upper)
      return #out + n
    end },
  { "key = value captures: s:gmatch('(%w+)%s*=%s*(%d+)')", function()
      local n = 0
      for k, v in text:gmatch("(%w+)%s*=%s*(%d+)") do n = n + #k + #v end
      return n
    end },
  { "search at the end: s:find('needle%d')", function()
      return (needle:find("needle%d"))
    end },
  { "plain find at the end: s:find('needle7', 1, true)", function()
      return (needle:find("needle7", 1, true))
    end },
}
