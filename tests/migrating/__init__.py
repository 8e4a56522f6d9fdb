"""An app whose data migrations create and remove tasks; installed only while a test migrates it."""
