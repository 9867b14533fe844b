"""placeholder"""
CONVERTERS = {}
