"""Studies that choose something by a committed protocol (the evidential loss, ShuffleNet
v1 grouping, the converged schedule) and the small learning check they share."""
