"""Personal data: how long it is kept (``retention``), how it is forgotten everywhere (``scrub``),
and what a data subject gets when they ask (``subject_export``)."""
