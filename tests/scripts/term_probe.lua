-- Reports what `term` is in this state and how each call answers when stdin
-- and stdout are not a terminal (tests/bindings/test_term.cpp), then quits.
print("term is " .. type(term))
if term then
  local function answer(...)
    local out = {}
    for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end
    return table.concat(out, ",")
  end
  print("open: " .. answer(term.open()))
  print("size: " .. answer(term.size()))
  print("keys before open: " .. answer(pcall(term.keys)))
  print("write number: " .. answer(pcall(term.write, {})))
  print("write huge: " .. answer(pcall(term.write, string.rep("x", (1 << 20) + 1))))
  print("close: " .. answer(term.close()))
  print("write: " .. answer(term.write("written\n")))
end
sys.quit(0)
