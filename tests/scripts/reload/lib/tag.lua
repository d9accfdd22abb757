-- Required by game.lua from a subdirectory: the tag its replies carry.
return "v1"
