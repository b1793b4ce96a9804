"""The scoring path: the stage contract, the file router, the clip / windows / video scorers and the
speaker transform, and the job that runs them."""
