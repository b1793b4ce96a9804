"""Where stages run: one worker adapter, the local / pool / Ray backends and one dispatch loop, the decode
watchdog."""
