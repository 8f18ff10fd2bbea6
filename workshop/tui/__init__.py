"""The Textual workshop: composer, grid, journal and help screens.

Generation runs in thread workers that only post messages back; widgets are touched on the UI thread alone. torch and
diffusers are imported inside those workers, so the first screen appears before they load.
"""

GRAPHICS = ("auto", "kitty", "sixel", "halfcell", "none")
