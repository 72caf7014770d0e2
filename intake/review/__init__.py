"""The reviewer's workspace: the queue of records a reviewer may open, and a record without the person's identity."""
