-- A guess match: up to three players, a number from 1 to 100. It starts when
-- full, or two seconds after its second player arrived, and then locks (late
-- comers go to another match). Each "guess" gets "higher" or "lower" back to
-- the guesser alone; a hit wins, everyone hears it and the room closes. A
-- player left alone after the others quit wins by forfeit.
local number
local phase = "waiting"
local players = 0
local start_at  -- tick number at which a waiting match with two players starts
local now = 0

local function publish()
  room.set_metadata({ phase = phase, players = players })
end

local function start()
  phase = "playing"
  room.lock()
  publish()
  room.broadcast("start", { players = players })
end

function room.create(options)
  number = math.random(1, 100)
  publish()
end

function room.join(c, options)
  players = players + 1
  publish()
  if players == 2 then start_at = now + 60 end  -- 2 s at the server's 30 Hz
end

function room.tick(tick_num)
  now = now + 1
  if phase ~= "waiting" or players < 2 then return end
  if players == 3 or now >= start_at then start() end
end

local function finish(winner)
  phase = "over"
  publish()
  room.broadcast("won", { winner = winner, number = number })
  room.close("finished")
end

function room.message(c, kind, data)
  if kind ~= "guess" or phase ~= "playing" or math.type(data) ~= "integer" then return end
  if data == number then
    finish(c.id)
  else
    room.send(c, data < number and "higher" or "lower", { guess = data })
  end
end

function room.leave(c, reason)
  players = players - 1
  if phase ~= "playing" or players ~= 1 then return end
  for _, other in ipairs(room.clients()) do
    if other.id ~= c.id then return finish(other.id) end
  end
end
