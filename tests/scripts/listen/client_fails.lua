-- A listen server whose local client's state fails at load
-- (tests/integration/test_listen_server.cpp): the server's loads fine.
if sys.runtime_role() == "client" then error("no local client here") end
