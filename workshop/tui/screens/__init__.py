"""The app's screens: composer, grid, journal (and detail), help, and small modal dialogs."""
