"""The recorder core: sequence accounting, limits, subsampling and batching.

Single-threaded; fed decoded messages by the daemon's pipeline or arrays by the
embedded API, it hands batches to the session writer. No zenoh here.
"""
