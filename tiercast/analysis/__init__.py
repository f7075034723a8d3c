"""Offline analyses of scored files: the tier report, the budgeted retention plan and the campaign read-out."""
