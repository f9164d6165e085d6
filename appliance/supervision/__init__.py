"""Process supervision for `platformctl up`: the owned Redis and the four Ovation processes."""
