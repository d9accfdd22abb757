---@meta nshost.interest
-- require "nshost.interest" (scripts/nshost/interest.lua): interest
-- management on a uniform grid, fed to a room's views. Checked by
-- tests/bindings/test_annotations.cpp against the module's table and a grid's
-- methods.

---[server, client, room] The shipped module nshost.interest.
---@class nshost.interest
local M = {}

---A key the grid tracks: a string or an integer (e.g. c.id).
---@alias nshost.interest.key string|integer

---Anything with :add(key) and :remove(key), such as a room's view of a client.
---@class nshost.interest.view
---@field add fun(self: nshost.interest.view, key: nshost.interest.key)
---@field remove fun(self: nshost.interest.view, key: nshost.interest.key)

---A new grid. Raises on bad options.
---@param options {cell: number, radius?: number, max?: integer} cell: world units per cell side (> 0); radius: world units (>= 0, default cell); max: entities per view (>= 1, nil: no limit)
---@return nshost.interest.Grid
function M.grid(options) end

---[server, client, room] A grid from interest.grid. Keep the cell about the radius's size: a refresh reads the
---cells the radius covers.
---@class nshost.interest.Grid
---@field cell number world units per cell side
---@field radius number world units
---@field max integer? entities per view
local Grid = {}

---Sets an entity's position (world units, finite); adds it if new.
---@param key nshost.interest.key
---@param x number
---@param y number
function Grid:move(key, x, y) end

---The entity is gone.
---@param key nshost.interest.key
function Grid:remove(key) end

---The entity's position, or nil when unknown.
---@param key nshost.interest.key
---@return number? x
---@return number? y
function Grid:position(key) end

---The keys within `radius` of (x, y); the nearest first, at most `max`, when max is set.
---@param x number
---@param y number
---@param radius? number world units, default the grid's
---@param max? integer default the grid's
---@return nshost.interest.key[]
function Grid:near(x, y, radius, max) end

---The viewer now sees the entities near (x, y) (and always its own key); returns what came into and went out of
---its view since its last refresh, and applies the changes to `view` when given.
---@param viewer nshost.interest.key
---@param x number
---@param y number
---@param view? nshost.interest.view
---@return nshost.interest.key[] entered
---@return nshost.interest.key[] left
function Grid:refresh(viewer, x, y, view) end

---Drops the viewer's set (it left).
---@param viewer nshost.interest.key
function Grid:forget(viewer) end

---The keys of the viewer's last refresh (a new table).
---@param viewer nshost.interest.key
---@return nshost.interest.key[]
function Grid:visible(viewer) end

---Internal: fills the grid's scratch list with the keys within `radius`; returns their count.
---@private
---@param x number
---@param y number
---@param radius number
---@return integer
function Grid:collect(x, y, radius) end

return M
