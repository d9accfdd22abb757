-- Lateness of timer.after(0.02) and timer.every(0.01), ms, measured with sys.time().
local late = {}
local n = 0
local function one()
  local due = sys.time() + 0.02
  timer.after(0.02, function()
    late[#late + 1] = (sys.time() - due) * 1000
    n = n + 1
    if n < 200 then one() else
      table.sort(late)
      print(("after(0.02) x200: lateness ms min %.2f median %.2f p99 %.2f max %.2f"):format(
        late[1], late[100], late[198], late[200]))
      sys.quit()
    end
  end)
end
one()
