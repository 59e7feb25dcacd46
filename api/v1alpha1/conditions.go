package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// The conditions of each kind's status, for code that handles the conditions of any of
// them (the operator's status writer).

// GetConditions returns the conditions of the server's status.
func (s *SSOServer) GetConditions() []metav1.Condition { return s.Status.Conditions }

// SetConditions replaces the conditions of the server's status.
func (s *SSOServer) SetConditions(c []metav1.Condition) { s.Status.Conditions = c }

// GetConditions returns the conditions of the client's status.
func (c *SSOClient) GetConditions() []metav1.Condition { return c.Status.Conditions }

// SetConditions replaces the conditions of the client's status.
func (c *SSOClient) SetConditions(conds []metav1.Condition) { c.Status.Conditions = conds }

// GetConditions returns the conditions of the connection's status.
func (c *IdentityConnection) GetConditions() []metav1.Condition { return c.Status.Conditions }

// SetConditions replaces the conditions of the connection's status.
func (c *IdentityConnection) SetConditions(conds []metav1.Condition) { c.Status.Conditions = conds }

// GetConditions returns the conditions of the API's status.
func (a *SSOAPI) GetConditions() []metav1.Condition { return a.Status.Conditions }

// SetConditions replaces the conditions of the API's status.
func (a *SSOAPI) SetConditions(c []metav1.Condition) { a.Status.Conditions = c }
