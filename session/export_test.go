package session

// RefreshClaimID lets the external tests hold a refresh claim as another
// instance would (refreshClaimID).
var RefreshClaimID = refreshClaimID
