"""The core layer: errors, the registry, atomic files, validation, the run data model, run.json,
study storage and the user's code. It imports nothing else from slimkit."""
