-- A bot of tests/integration/test_matchmaking.cpp: queues for "regional"
-- in a region of its own (nobody to match) and leaves that queue again,
-- then queues for "quad", twice (refused), and prints what it is told.
-- Misuse of the builtins raises.
function client.connect()
  local session = rooms.session_id()
  print(("bad size: %s"):format(tostring(pcall(matchmaking.enqueue, "quad", 0))))
  print(("bad properties: %s"):format(tostring(pcall(matchmaking.enqueue, "quad", 4, "eu"))))
  local ok, err = matchmaking.enqueue("regional", 2, { region = "mars-" .. session }, function(queued, why, code)
    print(("session=%d regional queued=%s"):format(session, tostring(queued)))
    matchmaking.dequeue("regional", function(left, why2, code2)
      print(("session=%d regional dequeued=%s"):format(session, tostring(left)))
      matchmaking.dequeue("regional", function(again, why3, code3)
        print(("session=%d dequeue again: %s %s %s"):format(session, tostring(again), tostring(why3), tostring(code3)))
        matchmaking.enqueue("quad", 4, { region = "eu" })
        matchmaking.enqueue("quad", 4, nil, function(twice, why4, code4)
          print(("session=%d enqueue twice: %s %s %s"):format(session, tostring(twice), tostring(why4), tostring(code4)))
        end)
      end)
    end)
  end)
  print(("session=%d enqueue returned %s %s"):format(session, tostring(ok), tostring(err)))
end

function client.match_found(match)
  local ids = {}
  for i, id in ipairs(match.participants) do ids[i] = tostring(id) end
  print(("session=%d match_found room=%s type=%s size=%d participants=%s"):format(rooms.session_id(),
    tostring(match.room), match.room_type, match.size, table.concat(ids, ",")))
end

function client.room_message(r, type, data)
  if type == "welcome" then
    print(("session=%d welcome in %s region=%s"):format(rooms.session_id(), tostring(r), tostring(data.region)))
  end
end
