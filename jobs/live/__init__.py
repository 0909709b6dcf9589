"""Live job updates: changes published once to Redis pub/sub, fanned out in each web
process to long-polls and Server-Sent-Event streams that hold no thread."""
