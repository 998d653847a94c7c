"""Many scenes: the generate loop, the data set's layout, scene processes (cold and warm) and the scene worker."""
