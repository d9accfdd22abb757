-- Asks to stop while the script is still loading.
sys.quit(tonumber(os.getenv("QUIT_CODE") or "0"))
