"""Raster maths: AOIs, windowed reads, band maths, statistics, COG writing. numpy in, numpy out."""
