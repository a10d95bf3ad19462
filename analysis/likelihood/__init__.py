"""Published likelihoods: archives, CLs scans, exclusion contours."""
